"""Comparing the directories operators name in corral.yaml with the ones found on disk."""

from __future__ import annotations

from pathlib import Path

__all__ = ["same_dir"]


def same_dir(a: Path, b: Path) -> bool:
    """Whether `a` and `b` are one directory (by resolved path where both resolve)."""
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return a == b
