"""Reader for any folder-per-class data set (ALL/AML/normal, PBC, the Taleqani smear set, ...).

``root/<class>/<image>`` with any number of classes. Subject ids come from an optional CSV with
columns ``file`` (a path relative to ``root``, or a bare file name) and ``subject_id``; without
it the index has no subject ids and training needs explicit image-level grouping.
``class_map`` selects and renames folders, e.g. ``{"MYO": "blast", "LYT": "normal", "MON": "monocyte"}``.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from blastscope.data.csv_text import CsvTextError, csv_text
from blastscope.data.decode import IMAGE_SUFFIXES
from blastscope.data.index import IndexError_, make_index

__all__ = ["read_folder_per_class", "read_subject_csv"]


logger = logging.getLogger(__name__)

def read_subject_csv(path: Path) -> dict[str, str]:
    """Map file (relative path or bare name) -> subject id; any defect is an IndexError_ naming the CSV (and line)."""
    try:
        return _subject_rows(csv.DictReader(csv_text(path)), path)
    except CsvTextError as e:
        raise IndexError_(str(e)) from None
    except (csv.Error, UnicodeError, OSError) as e:
        raise IndexError_(f"{path}: not a readable CSV file ({e})") from None


def _subject_rows(reader: csv.DictReader, path: Path) -> dict[str, str]:
    mapping: dict[str, str] = {}
    fields = set(reader.fieldnames or [])
    file_col = "file" if "file" in fields else "path" if "path" in fields else None
    if file_col is None or "subject_id" not in fields:
        raise IndexError_(f"{path}: expected columns 'file' and 'subject_id', found {reader.fieldnames}")
    for rec in reader:
        line = reader.line_num
        key, subject = (rec.get(file_col) or "").strip(), (rec.get("subject_id") or "").strip()
        if not key or not subject:
            raise IndexError_(f"{path}, line {line}: empty file or subject_id")
        if key in mapping and mapping[key] != subject:
            raise IndexError_(f"{path}, line {line}: {key!r} is mapped to two subjects ({mapping[key]!r}, {subject!r})")
        mapping[key] = subject
    return mapping


def read_folder_per_class(
    root: Path | str,
    subjects_csv: Path | str | None = None,
    class_map: dict[str, str] | None = None,
    source: str = "folder",
) -> pd.DataFrame:
    root = Path(root)
    if not root.is_dir():
        raise IndexError_(f"{root}: not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_map is not None:
        unknown = set(class_map) - {p.name for p in folders}
        if unknown:
            raise IndexError_(f"{root}: class folders {sorted(unknown)} do not exist (found {[p.name for p in folders]})")
        left_out = [p for p in folders if p.name not in class_map]
        if left_out:
            counts = ", ".join(f"{p.name} ({sum(1 for f in p.rglob('*') if f.suffix.lower() in IMAGE_SUFFIXES)} images)"
                               for p in left_out)
            logger.warning("%s: data.class_map leaves out the class folder(s) %s", root, counts)
        folders = [p for p in folders if p.name in class_map]
    mapping = read_subject_csv(Path(subjects_csv)) if subjects_csv else {}
    rows, conflicts = [], []
    for folder in folders:
        label = class_map[folder.name] if class_map else folder.name
        images = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise IndexError_(f"{folder}: class folder {folder.name!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for image in images:
            rel = image.relative_to(root).as_posix()
            subject = mapping.get(rel, mapping.get(image.name, ""))
            if rel != image.name and rel in mapping and mapping.get(image.name, subject) != subject:
                conflicts.append(f"{rel!r} -> {mapping[rel]!r} and {image.name!r} -> {mapping[image.name]!r}")
            rows.append(dict(path=str(image.resolve()), label=label, subject_id=subject, source=source))
    if not rows:
        raise IndexError_(f"{root}: no class folders with images found")
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (f" (and {len(conflicts) - 5} more)" if len(conflicts) > 5 else "")
        raise IndexError_(f"{subjects_csv}: {len(conflicts)} image(s) mapped to two subjects, by their path and by "
                          f"their bare name: {shown}")
    if mapping:
        missing = [r["path"] for r in rows if not r["subject_id"]]
        if missing:
            raise IndexError_(f"{subjects_csv}: {len(missing)} images have no subject id, e.g. {missing[0]}")
    return make_index(rows)
