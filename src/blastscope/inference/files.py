"""Which files to predict, and which subject each belongs to.

Inputs are files, folders (searched recursively for image suffixes) or glob patterns. Subject ids
come, in this order of precedence, from an explicit ``subject`` for all files, a CSV with columns
``file,subject_id`` (matched by resolved path, else by file name), or the C-NMC file name
(``UID_<subject>_<image>_<cell>_<label>.bmp``); otherwise the subject is unknown (``""``).
"""
from __future__ import annotations

import csv
import glob
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from blastscope.data.csv_text import csv_text
from blastscope.data.cnmc import NameError_, parse_cnmc_name
from blastscope.data.decode import IMAGE_SUFFIXES

__all__ = ["BadFile", "collect_inputs", "resolve_subjects", "read_subjects_csv"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadFile:
    """A requested input that could not be predicted, with the reason."""

    file: str
    reason: str


def collect_inputs(items: Iterable[str | Path]) -> tuple[list[Path], list[BadFile]]:
    """Expand files, folders and globs into a sorted, de-duplicated file list.

    Returns the image files and the inputs that matched nothing (as :class:`BadFile`). Files
    given explicitly are kept whatever their suffix (the decoder decides); folders and globs
    contribute files with an image suffix only.
    """
    found: dict[str, Path] = {}
    bad: list[BadFile] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            matches = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if not matches:
                bad.append(BadFile(text, "folder holds no image files"))
        elif path.exists():
            matches = [path]
        elif glob.has_magic(text):
            matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))
                       if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES]
            if not matches:
                bad.append(BadFile(text, "pattern matches no image files"))
        else:
            matches = []
            bad.append(BadFile(text, "file not found"))
        for p in matches:
            found.setdefault(str(p.resolve()), p)
    return [found[k] for k in sorted(found)], bad


def read_subjects_csv(path: Path | str) -> dict[str, str]:
    """``file -> subject_id`` from a CSV with those two columns (extra columns are ignored)."""
    path = Path(path)
    with csv_text(path) as fh:  # a NUL byte is a CsvTextError (a ValueError) naming the line
        reader = csv.DictReader(fh)
        need = {"file", "subject_id"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(need)}, found {reader.fieldnames}")
        mapping = {}
        for line, row in enumerate(reader, start=2):
            file, subject = (row["file"] or "").strip(), (row["subject_id"] or "").strip()
            if not file:
                raise ValueError(f"{path}, line {line}: empty file name")
            mapping[file] = subject
    return mapping


def resolve_subjects(files: Sequence[Path], subject: str | None = None,
                     subjects: dict[str, str] | None = None) -> list[str]:
    """Subject id of every file (``""`` when unknown); see the module docstring for precedence."""
    if subject is not None:
        if not str(subject).strip():
            raise ValueError("subject must be a non-empty id, got an empty string")
        return [str(subject).strip()] * len(files)
    by_path = {str(Path(k).resolve()): v for k, v in (subjects or {}).items()}
    by_name = {Path(k).name: v for k, v in (subjects or {}).items()}
    out = []
    for f in files:
        sid = by_path.get(str(Path(f).resolve()), by_name.get(Path(f).name))
        if sid is None:
            try:
                sid = parse_cnmc_name(Path(f).name).subject_id
            except NameError_:
                sid = ""
        out.append(sid)
    unknown = sum(1 for s in out if not s)
    if unknown:
        logger.warning("%d of %d files have no subject id (not C-NMC names and not in a subjects CSV); "
                       "they are predicted but left out of the per-subject summary", unknown, len(files))
    return out
