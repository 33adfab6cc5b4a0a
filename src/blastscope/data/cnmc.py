"""Reader for C-NMC 2019 (Gupta & Gupta 2019, TCIA; Gehlot et al. 2020 section 2).

Two layouts are understood:

- the official release: ``training_data/fold_{0,1,2}/{all,hem}/UID_*.bmp``,
  ``validation_data/<folder>/<n>.bmp`` with ``validation_data/<folder>_labels.csv``
  (``Patient_ID,new_names,labels``) and ``testing_data/<folder>/<n>.bmp`` (unlabelled unless a
  labels CSV lies beside the folder);
- loose folders of ``UID_<subject>_<image>_<cell>_<all|hem>.bmp`` files at any depth.

Subject ids come from the file names, case-insensitively (``UID_h3_...`` and ``UID_H3_...`` are
subject ``H3``). Label ``aml`` is a toolkit extension used by the 3-class synthetic data.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from blastscope.data.csv_text import CsvTextError, csv_text
from blastscope.data.index import IndexError_, make_index

__all__ = ["CnmcName", "parse_cnmc_name", "read_cnmc", "is_cnmc_official", "NameError_", "BadNamesError"]

# ASCII digits only, at most 9 per number (no int() of a 5000-digit string), and nothing after ".bmp".
_NAME = re.compile(r"^UID_(H?[0-9]{1,9}|A[0-9]{1,9})_([0-9]{1,9})_([0-9]{1,9})_(all|hem|aml)\.bmp\Z", re.IGNORECASE | re.ASCII)
LABEL_NAMES = {"0": "hem", "1": "all", "2": "aml"}
_BAD_NAME = "name does not follow UID_<subject>_<image>_<cell>_<all|hem>.bmp"


class NameError_(ValueError):
    """A file name that does not follow the C-NMC naming scheme."""


class BadNamesError(IndexError_):
    """Training files the reader cannot index; ``problems`` lists every one as ``{"file", "problem"}``."""

    def __init__(self, root: Path, problems: list[dict]):
        self.root, self.problems = root, list(problems)
        lines = "".join(f"\n  {p['file']}" + ("" if p["problem"] == _BAD_NAME else f" ({p['problem']})") for p in self.problems)
        super().__init__(f"{len(self.problems)} files under {root} do not follow the C-NMC naming scheme "
                         f"UID_<subject>_<image>_<cell>_<all|hem>.bmp or disagree with their class folder:{lines}")

    def __reduce__(self):
        return type(self), (self.root, self.problems)


@dataclass(frozen=True)
class CnmcName:
    subject_id: str
    image: int
    cell: int
    label: str


def parse_cnmc_name(name: str) -> CnmcName:
    """Parse ``UID_<subject>_<image>_<cell>_<all|hem>.bmp`` (case-insensitive).

    >>> parse_cnmc_name("UID_h3_4_1_hem.bmp")
    CnmcName(subject_id='H3', image=4, cell=1, label='hem')
    """
    m = _NAME.match(Path(name).name)
    if m is None:
        raise NameError_(f"{name!r} does not match UID_<subject>_<image>_<cell>_<all|hem>.bmp")
    subject, image, cell, label = m.groups()
    return CnmcName(subject.upper(), int(image), int(cell), label.lower())


def is_cnmc_official(root: Path) -> bool:
    return (Path(root) / "training_data").is_dir()


def _labelled_folder(csv_path: Path, folder: Path, split: str) -> list[dict]:
    """Rows of a held-out folder from its ``<folder>_labels.csv``; any defect is an IndexError_ naming the CSV."""
    try:
        return _labelled_rows(csv.DictReader(csv_text(csv_path)), csv_path, folder, split)
    except CsvTextError as e:
        raise IndexError_(str(e)) from None
    except (csv.Error, UnicodeError, OSError) as e:
        raise IndexError_(f"{csv_path}: not a readable CSV file ({e})") from None


def _labelled_rows(reader: csv.DictReader, csv_path: Path, folder: Path, split: str) -> list[dict]:
    need = {"Patient_ID", "new_names", "labels"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise IndexError_(f"{csv_path}: expected columns {sorted(need)}, found {reader.fieldnames}")
    rows = []
    for rec in reader:
        line = reader.line_num
        name, patient, value = ((rec.get(k) or "").strip() for k in ("new_names", "Patient_ID", "labels"))
        if not name or Path(name).name != name:
            raise IndexError_(f"{csv_path}, line {line}: new_names {name!r} is not a file name in {folder}")
        try:
            parsed = parse_cnmc_name(patient)
        except NameError_ as e:
            raise IndexError_(f"{csv_path}, line {line}: {e}") from None
        label = LABEL_NAMES.get(value)
        if label is None:
            raise IndexError_(f"{csv_path}, line {line}: label {value!r} is not 0, 1 or 2")
        rows.append(dict(path=str((folder / name).resolve()), label=label, subject_id=parsed.subject_id, source="cnmc", split=split))
    return rows


def _held_out(top: Path, split: str) -> list[dict]:
    rows: list[dict] = []
    if not top.is_dir():
        return rows
    for folder in sorted(p for p in top.iterdir() if p.is_dir()):
        labels = top / f"{folder.name}_labels.csv"
        if labels.exists():
            rows += _labelled_folder(labels, folder, split)
        else:
            for image in sorted(folder.glob("*.bmp")):
                rows.append(dict(path=str(image.resolve()), split=split, source="cnmc"))
    return rows


def read_cnmc(root: Path | str, problems: list[dict] | None = None) -> pd.DataFrame:
    """Index a C-NMC tree (official layout or loose ``UID_*.bmp`` files).

    Files in a training folder whose names do not parse, and names whose label disagrees with
    their ``all``/``hem`` folder, raise one :class:`BadNamesError` listing every one of them. With
    a ``problems`` list such files are left out instead and appended to it as ``{"file", "problem"}``
    (absolute paths), e.g. for ``blastscope cv --skip-invalid`` or ``blastscope data check``.
    """
    root = Path(root)
    rows: list[dict] = []
    bad: list[str] = []
    if is_cnmc_official(root):
        for fold_dir in sorted((root / "training_data").glob("fold_*")):
            fold = int(fold_dir.name.split("_")[1])
            for image in sorted(fold_dir.rglob("*.bmp")):
                try:
                    parsed = parse_cnmc_name(image.name)
                except NameError_:
                    bad.append((str(image.resolve()), _BAD_NAME))
                    continue
                if image.parent.name.lower() in ("all", "hem", "aml") and image.parent.name.lower() != parsed.label:
                    bad.append((str(image.resolve()), f"name says {parsed.label}, folder says {image.parent.name}"))
                    continue
                rows.append(dict(path=str(image.resolve()), label=parsed.label, subject_id=parsed.subject_id,
                                 source="cnmc", split="train", fold=fold))
        rows += _held_out(root / "validation_data", "validation")
        rows += _held_out(root / "testing_data", "test")
    else:
        for image in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".bmp"):
            try:
                parsed = parse_cnmc_name(image.name)
            except NameError_:
                bad.append((str(image.resolve()), _BAD_NAME))
                continue
            rows.append(dict(path=str(image.resolve()), label=parsed.label, subject_id=parsed.subject_id, source="cnmc"))
    found = [{"file": f, "problem": why} for f, why in bad]
    if found and problems is None:
        raise BadNamesError(root, found)
    if problems is not None:
        problems += found
    if not rows:
        raise IndexError_(f"no C-NMC images found under {root}")
    return make_index(rows)
