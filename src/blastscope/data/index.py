"""The one sample index every reader yields.

A sample index is a :class:`pandas.DataFrame` with one row per cell image and the columns
``path, label, subject_id, source, split, fold``:

- ``path``: absolute path of the image file.
- ``label``: class name (``"all"``/``"hem"`` for C-NMC), ``""`` when unlabelled.
- ``subject_id``: patient/subject the cell comes from, ``""`` when the dataset has none.
- ``source``: dataset name, e.g. ``"cnmc"``, ``"all-idb2"``, ``"folder"``.
- ``split``: ``"train"``, ``"validation"``, ``"test"`` where the dataset defines it, else ``""``.
- ``fold``: the dataset's own training fold (C-NMC ``fold_0..2``), ``-1`` where none.

``df.attrs["grouping"]`` is ``"subject"`` (default) or ``"image"`` after :func:`validate_index`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Literal

import pandas as pd

__all__ = ["COLUMNS", "IndexError_", "make_index", "validate_index", "read_index_csv", "write_index_csv"]

logger = logging.getLogger(__name__)

COLUMNS = ["path", "label", "subject_id", "source", "split", "fold"]
Grouping = Literal["subject", "image"]
IMAGE_GROUP_PREFIX = "image:"


class IndexError_(ValueError):
    """A sample index that cannot be used as it is; the message names the rows/files at fault."""


def make_index(rows: Iterable[dict]) -> pd.DataFrame:
    """Build an index from dicts with (a subset of) :data:`COLUMNS`; missing columns get defaults."""
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    defaults = {"path": "", "label": "", "subject_id": "", "source": "", "split": "", "fold": -1}
    for column, value in defaults.items():
        df[column] = df[column].astype(object).fillna(value)
    df["fold"] = df["fold"].astype(int)
    for column in ("path", "label", "subject_id", "source", "split"):
        df[column] = df[column].astype(str)
    return df


def _show(paths: pd.Series, limit: int = 5) -> str:
    shown = ", ".join(paths.head(limit).tolist())
    more = len(paths) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def validate_index(df: pd.DataFrame, grouping: Grouping = "subject", require_labels: bool = True) -> pd.DataFrame:
    """Check an index before it is split or trained on and return a validated copy.

    Subject-level grouping is the default and refuses rows without a subject id. With
    ``grouping="image"`` every image becomes its own group (subject ids ``image:<path>``), which
    is only honest for datasets that have no subject ids; ``attrs["grouping"]`` records the choice
    so every report can say so.
    """
    if grouping not in ("subject", "image"):
        raise ValueError(f"grouping must be 'subject' or 'image', got grouping={grouping!r}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise IndexError_(f"sample index lacks columns {missing}")
    if len(df) == 0:
        raise IndexError_("sample index is empty: no images were found")
    try:  # missing values become "" (fold -1), numbers become text, as every reader makes them
        out = make_index(df[COLUMNS].to_dict("records"))
    except (ValueError, TypeError, OverflowError) as e:
        raise IndexError_(f"sample index has a fold that is not an integer ({e})") from None
    out.index = df.index
    no_path = out["path"].str.len() == 0
    if no_path.any():
        raise IndexError_(f"{int(no_path.sum())} rows of the sample index have no path")
    if require_labels:
        unlabelled = out["label"].str.len() == 0
        if unlabelled.any():
            raise IndexError_(f"{int(unlabelled.sum())} images have no label: {_show(out.loc[unlabelled, 'path'])}")
    if grouping == "subject":
        no_subject = out["subject_id"].str.len() == 0
        if no_subject.any():
            raise IndexError_(
                f"{int(no_subject.sum())} images have no subject id: {_show(out.loc[no_subject, 'path'])}. "
                "Supply subject ids (e.g. a CSV mapping file -> subject id) or ask explicitly for "
                "image-level grouping (--grouping image), which is optimistic and labelled as such in every report"
            )
        mixed = out[out["label"].str.len() > 0].groupby("subject_id")["label"].nunique()
        mixed = mixed[mixed > 1]
        if len(mixed):
            raise IndexError_(f"subjects whose cells carry two labels: {', '.join(map(str, mixed.index[:10]))}")
    else:
        logger.warning("image-level grouping: cells of one subject may land in train and test; results are optimistic")
        out["subject_id"] = IMAGE_GROUP_PREFIX + out["path"]
    dupes = out["path"].duplicated()
    if dupes.any():
        raise IndexError_(f"the same file is listed twice: {_show(out.loc[dupes, 'path'])}")
    out.attrs["grouping"] = grouping
    return out


def read_index_csv(path: Path) -> pd.DataFrame:
    from blastscope.engine.atomic import read_safe_csv

    df = read_safe_csv(path, dtype={"path": str, "label": str, "subject_id": str, "split": str, "source": str}, keep_default_na=False)
    return make_index(df.to_dict("records"))


def write_index_csv(df: pd.DataFrame, path: Path) -> None:
    from blastscope.engine.atomic import atomic_write_csv

    atomic_write_csv(path, df[COLUMNS])
