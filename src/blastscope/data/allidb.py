"""Readers for ALL-IDB (Labati, Piuri & Scotti 2011), as used by Noshad & Fallahi 2021 section 2.

- ALL-IDB2: 260 cropped cells ``ImXXX_Y.tif``, ``Y`` = 1 blast / 0 normal. No subject ids:
  the index leaves ``subject_id`` empty, so training needs explicit image-level grouping.
- ALL-IDB1: full fields ``ImXXX_Y.jpg`` with ``ImXXX_Y.xyc`` files listing blast centroids (one
  ``x y`` pair per line). Fixed-size crops around each centroid are written to ``crop_dir`` and
  indexed as ``all`` (blast); the field image id is recorded as ``subject_id`` prefixed
  ``field:`` so crops of one field never straddle a split (the dataset has no patient ids; this is
  the finest honest grouping it allows). Fields without blasts contribute no crops.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from blastscope.data.decode import read_image
from blastscope.data.index import IndexError_, make_index
from blastscope.engine.atomic import atomic_write_bytes

__all__ = ["read_all_idb2", "read_all_idb1", "is_all_idb"]

_IDB2 = re.compile(r"^Im(\d{3})_([01])\.tiff?$", re.IGNORECASE)
_IDB1 = re.compile(r"^Im(\d{3})_([01])\.jpe?g$", re.IGNORECASE)
IDB_LABELS = {"1": "all", "0": "hem"}


def is_all_idb(root: Path) -> str | None:
    names = [p.name for p in Path(root).rglob("*") if p.is_file()]
    if any(_IDB1.match(n) for n in names) and any(n.lower().endswith(".xyc") for n in names):
        return "all-idb1"
    if any(_IDB2.match(n) for n in names):
        return "all-idb2"
    return None


def read_all_idb2(root: Path | str) -> pd.DataFrame:
    root = Path(root)
    rows = []
    for image in sorted(p for p in root.rglob("*") if p.is_file()):
        m = _IDB2.match(image.name)
        if m:
            rows.append(dict(path=str(image.resolve()), label=IDB_LABELS[m.group(2)], source="all-idb2"))
    if not rows:
        raise IndexError_(f"no ALL-IDB2 images (ImXXX_Y.tif) found under {root}")
    return make_index(rows)


def _read_xyc(path: Path) -> list[tuple[int, int]]:
    points = []
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            x, y = int(round(float(parts[0]))), int(round(float(parts[1])))
        except (ValueError, IndexError):
            raise IndexError_(f"{path}, line {line_no}: expected 'x y', got {line!r}") from None
        points.append((x, y))
    return points


def read_all_idb1(root: Path | str, crop_dir: Path | str, crop_size: int = 257) -> pd.DataFrame:
    """Index ALL-IDB1 blast crops of ``crop_size`` pixels (zero-padded at field borders)."""
    root, crop_dir = Path(root), Path(crop_dir)
    rows = []
    half = crop_size // 2
    for image in sorted(p for p in root.rglob("*") if p.is_file() and _IDB1.match(p.name)):
        xyc = image.with_suffix(".xyc")
        if not xyc.exists():
            continue
        field = read_image(image)
        padded = cv2.copyMakeBorder(field, half, half, half, half, cv2.BORDER_CONSTANT, value=0)
        for k, (x, y) in enumerate(_read_xyc(xyc)):
            if not (0 <= x < field.shape[1] and 0 <= y < field.shape[0]):
                raise IndexError_(f"{xyc}: centroid ({x}, {y}) lies outside the {field.shape[1]}x{field.shape[0]} image")
            crop = padded[y : y + crop_size, x : x + crop_size]
            out = crop_dir / f"{image.stem}_blast{k:03d}.png"
            if not out.exists():  # written atomically, so an existing crop is always a whole file
                ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR))
                if not ok:
                    raise IndexError_(f"{image}: could not encode crop {k} as PNG")
                atomic_write_bytes(out, png.tobytes())
            rows.append(dict(path=str(out.resolve()), label="all", subject_id=f"field:{image.stem}", source="all-idb1"))
    if not rows:
        raise IndexError_(f"no ALL-IDB1 fields with .xyc centroid files found under {root}")
    return make_index(rows)
