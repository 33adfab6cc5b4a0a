"""Where a run folder keeps each arm's fold: ``arms/<arm>/fold_<k>``, with ``k`` 1-based.

Fold model k (Model k in every table, ``--fold k`` on the command line) lives in ``fold_<k>``;
code indexes folds from 0 (``folds.csv`` and the ``fold`` column of predictions), so the one
conversion is here.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["fold_dir", "fold_index", "FOLD_GLOB"]

FOLD_GLOB = "fold_*"


def fold_dir(run_dir: Path | str, arm: str, k: int) -> Path:
    """The folder of arm ``arm``'s fold with 0-based index ``k`` (``arms/<arm>/fold_<k + 1>``)."""
    return Path(run_dir) / "arms" / arm / f"fold_{int(k) + 1}"


def fold_index(name: str) -> int | None:
    """The 0-based fold index of a folder name ``fold_<k>`` (k >= 1), or None for other names."""
    head, _, tail = name.partition("_")
    if head != "fold" or not tail.isdigit() or int(tail) < 1:
        return None
    return int(tail) - 1
