"""One entry point that recognises a data set's layout and returns its sample index."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import pandas as pd

from blastscope.data.allidb import is_all_idb, read_all_idb1, read_all_idb2
from blastscope.data.cnmc import _NAME, is_cnmc_official, read_cnmc
from blastscope.data.folder import read_folder_per_class
from blastscope.data.index import IndexError_

__all__ = ["Layout", "detect_layout", "read_dataset", "symlink_loops"]

logger = logging.getLogger(__name__)

Layout = Literal["auto", "cnmc", "all-idb1", "all-idb2", "folder"]


def detect_layout(root: Path) -> str:
    root = Path(root)
    if not root.exists():
        raise IndexError_(f"{root}: no such directory")
    if not root.is_dir():
        raise IndexError_(f"{root}: not a directory")
    if is_cnmc_official(root):
        return "cnmc"
    files = [p for p in root.rglob("*") if p.is_file()]
    if not files:
        raise IndexError_(f"{root}: empty directory, no images found")
    if any(_NAME.match(p.name) for p in files):
        return "cnmc"
    idb = is_all_idb(root)
    if idb:
        return idb
    if any(p.is_dir() for p in root.iterdir()):
        return "folder"
    raise IndexError_(f"{root}: layout not recognised (expected C-NMC, ALL-IDB or one folder per class)")


def symlink_loops(root: Path | str) -> list[str]:
    """Symbolic links under ``root`` that loop: to themselves (or a chain back to themselves), or to a
    folder that contains them. Readers never follow them (``Path.rglob`` of Python 3.11 does not
    descend into linked folders), so their files are left out; this names them."""
    loops = []
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            link = os.path.join(folder, name)
            if not os.path.islink(link):
                continue
            try:
                target = os.path.realpath(link, strict=True)
            except OSError as e:
                if e.errno == 40 or "loop" in str(e).lower():  # ELOOP
                    loops.append(link)
                continue
            here = os.path.realpath(folder)
            if os.path.isdir(target) and (here == target or here.startswith(target.rstrip(os.sep) + os.sep)):
                loops.append(link)
    return sorted(loops)


def read_dataset(
    root: Path | str,
    layout: Layout = "auto",
    subjects_csv: Path | str | None = None,
    class_map: dict[str, str] | None = None,
    crop_dir: Path | str | None = None,
    problems: list[dict] | None = None,
) -> pd.DataFrame:
    """Return the sample index of the data set at ``root`` (see :mod:`blastscope.data.index`).

    ``problems``: when given, files the reader cannot index (C-NMC names that do not parse or
    disagree with their class folder) are left out and appended to it as ``{"file", "problem"}``
    (absolute paths) instead of raising :class:`~blastscope.data.cnmc.BadNamesError` listing them
    all. ``blastscope cv --skip-invalid`` passes one and records them in ``RUN/skipped.csv``.
    """
    root = Path(root)
    kind = detect_layout(root) if layout == "auto" else layout
    for link in symlink_loops(root):
        logger.warning("%s: symbolic link loop, left out of the data set", link)
    if kind == "cnmc":
        return read_cnmc(root, problems)
    if kind == "all-idb2":
        return read_all_idb2(root)
    if kind == "all-idb1":
        return read_all_idb1(root, crop_dir or root / ".crops")
    if kind == "folder":
        return read_folder_per_class(root, subjects_csv=subjects_csv, class_map=class_map)
    raise ValueError(f"unknown layout {layout!r}")
