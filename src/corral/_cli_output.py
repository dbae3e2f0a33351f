"""What the command line prints: aligned tables, and a quiet end when stdout's reader goes away.

Tables are plain text, one row a line, columns two spaces apart under a header row, so they
read well on a terminal and still go through ``grep``, ``cut`` and ``head``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Sequence

from rich.cells import cell_len

from .capabilities.log import escape_controls

__all__ = ["print_table", "silence_stdout"]


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    # A line break in a title (from Jira, say) would otherwise split its row in two.
    return escape_controls(str(value))


def print_table(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, right: Collection[int] = ()
) -> None:
    """Print `rows` under `header`, aligned; columns numbered in `right` are right-aligned.

    Empty cells (None or "") show as ``-``. The last column is not padded, so a long value
    there (a title, a reason) costs no trailing spaces on the other rows.
    """
    table = [list(header), *([_cell(value) for value in row] for row in rows)]
    widths = [max(cell_len(row[i]) for row in table) for i in range(len(header))]
    last = len(header) - 1
    for row in table:
        cells = []
        for i, (text, width) in enumerate(zip(row, widths, strict=True)):
            pad = " " * (width - cell_len(text))
            cells.append(pad + text if i in right else text if i == last else text + pad)
        print("  ".join(cells))


def silence_stdout() -> None:
    """Point stdout at the null device once its reader has gone (``corral ... | head``).

    Whatever is still buffered then goes nowhere, instead of failing again when Python flushes
    stdout at exit and printing a traceback there.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (stdout replaced in-process)
        pass
