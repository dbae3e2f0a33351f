"""Reading a file a bundle supplies without letting it stall or swamp the host.

A bundle's author chooses what its paths are: a FIFO would block `read()` forever, a device
could be endless or have side effects when opened, and a sparse file can claim gigabytes while
taking no disk. So the type and size are checked with `stat` before the file is opened, the
open never blocks (``O_NONBLOCK``) nor follows a symlink swapped in after the path was resolved
(``O_NOFOLLOW``), and `fstat` re-checks what was actually opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._units import format_size

__all__ = ["read_regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def read_regular_file(path: Path, max_bytes: int, limit_name: str, error: type[Exception]) -> bytes:
    """The contents of `path`, which must be a regular file of at most `max_bytes`.

    Every problem raises `error` with one line naming the file; `limit_name` is the setting that
    raises the cap.
    """
    try:
        real = path.resolve()
        _check(path, os.stat(real, follow_symlinks=False), max_bytes, limit_name, error)
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            _check(path, os.fstat(fd), max_bytes, limit_name, error)
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except RuntimeError:  # Path.resolve() on a symlink loop
        raise error(f"{path}: symlink loop") from None
    if len(data) > max_bytes:  # it grew after the check
        raise error(f"{path}: larger than {format_size(max_bytes)} (raise {limit_name})")
    return data


def _check(
    path: Path, status: os.stat_result, max_bytes: int, limit_name: str, error: type[Exception]
) -> None:
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a file")
        raise error(f"{path}: is {kind}, not a regular file")
    if status.st_size > max_bytes:
        raise error(
            f"{path}: is {format_size(status.st_size)} ({status.st_size:,} bytes), larger than the "
            f"{format_size(max_bytes)} allowed (raise {limit_name})"
        )
