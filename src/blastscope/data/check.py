"""``blastscope data check``: find every problem of a data folder at once, before training does.

Reports the detected layout, counts per class, subject and fold, image sizes and channel modes, and
problems: unreadable files (with the reason), names that do not parse, missing labels or subject
ids, subjects with two labels, empty classes (C-NMC), dataset folds without one of the classes
(a warning), and the same pixels under two subjects or two classes (a leak that subject-level
splitting cannot see). ``report["ok"]`` is False when any problem is an error (not a warning).

:func:`index_problems` holds the checks ``blastscope cv`` makes of the same index (subjects with
two labels, held-out subjects also in training, byte-identical files under two subjects or, with
image-level grouping, two images), so the two cannot disagree: what cv refuses is an error here,
what it warns about is a warning. Identical decoded pixels in files whose bytes differ are an extra
check of this command only (a warning; cv does not decode twice to find them).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import pandas as pd

from blastscope.data.cache import file_digest
from blastscope.data.decode import ImageReadError, read_image
from blastscope.data.index import IMAGE_GROUP_PREFIX, IndexError_
from blastscope.data.readers import detect_layout, read_dataset, symlink_loops

__all__ = ["HELD_OUT", "CALIB", "check_dataset", "duplicate_problems", "index_problems", "resolve_grouping"]

logger = logging.getLogger(__name__)

CNMC_CLASSES = ("all", "hem")
HELD_OUT = ("validation", "test")
CALIB = "calib"  # the split of the conformal calibration cells (trust.calibration): held out, never scored


def duplicate_problems(paths: list[str], subject_ids: list[str], labels: list[str], digests: list[str],
                       what: str = "identical pixels", group_word: str = "subjects") -> list[dict]:
    """One problem (a warning) per group of equal ``digests`` whose files carry two subjects or two classes.

    The same content under two subjects defeats subject-level splitting (it can land in training
    and validation); under two classes it is a contradictory label. ``group_word="images"`` words
    it for image-level grouping, where every image is its own group.
    """
    groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for item in zip(digests, paths, subject_ids, labels):
        groups[item[0]].append(item[1:])
    problems = []
    for items in groups.values():
        subjects = {s for _, s, _ in items if s}
        classes = {lab for _, _, lab in items if lab}
        kinds = [k for k, n in ((f"two {group_word}", len(subjects)), ("two classes", len(classes))) if n > 1]
        if kinds:
            problems.append({"file": items[0][0], "severity": "warning",
                             "problem": f"{what} under {' and '.join(kinds)}: " + ", ".join(p for p, _, _ in items)})
    return problems


def resolve_grouping(index: pd.DataFrame, grouping: str = "auto") -> str:
    """``"subject"`` or ``"image"``; ``auto`` is subject-level when the index has any subject id."""
    if grouping not in ("auto", "subject", "image"):
        raise ValueError(f"grouping must be auto, subject or image, got grouping={grouping!r}")
    if grouping == "auto":
        return "subject" if (index["subject_id"].str.len() > 0).any() else "image"
    return grouping


def index_problems(index: pd.DataFrame, grouping: str, digests: list[str] | None = None) -> list[dict]:
    """The checks ``blastscope cv`` and ``blastscope data check`` share, on the labelled rows of ``index``.

    Errors (cv refuses): under subject grouping, images without a subject id, subjects with two
    labels, and held-out (validation/test) subjects that also appear in training. Warnings (cv
    warns): byte-identical files (equal ``digests``, the SHA-1 of every row's file bytes, as
    :func:`blastscope.data.cache.file_digest` makes them) under two subjects (two images under
    image-level grouping) or two classes. Returns ``{"file", "problem", "severity"}`` dicts.
    """
    problems: list[dict] = []
    where = "sample index"
    labelled = index[index["label"].str.len() > 0]
    if grouping == "subject":
        no_subject = labelled["subject_id"].str.len() == 0
        if no_subject.any():
            problems.append({"file": where, "severity": "error", "problem":
                             f"{int(no_subject.sum())} images have no subject id (e.g. {labelled.loc[no_subject, 'path'].iloc[0]}); "
                             "supply a subject CSV or use image-level grouping (--grouping image, optimistic)"})
        with_subject = labelled[~no_subject]
        two_labels = with_subject.groupby("subject_id")["label"].nunique()
        for subject in two_labels[two_labels > 1].index:
            problems.append({"file": where, "severity": "error", "problem": f"subject {subject} has cells with two labels"})
        held = with_subject["split"].isin(HELD_OUT + (CALIB,))  # calibration cells are held out too
        overlap = sorted(set(with_subject.loc[~held, "subject_id"]) & set(with_subject.loc[held, "subject_id"]))
        if overlap:
            problems.append({"file": where, "severity": "error",
                             "problem": f"subjects appear in both training and held-out data: {overlap[:10]}"})
    if digests is not None:
        if len(digests) != len(index):
            raise ValueError(f"digests must give one digest per row, got {len(digests)} for {len(index)} rows")
        keep = (index["label"].str.len() > 0).to_numpy()
        frame = index[keep]
        groups = frame["subject_id"] if grouping == "subject" else frame["path"].map(
            lambda p: p if p.startswith(IMAGE_GROUP_PREFIX) else IMAGE_GROUP_PREFIX + p)
        problems += duplicate_problems(frame["path"].tolist(), groups.tolist(), frame["label"].tolist(),
                                       [d for d, k in zip(digests, keep) if k], "identical files",
                                       "subjects" if grouping == "subject" else "images")
    return problems


def check_dataset(root: Path | str, layout: str = "auto", subjects_csv: Path | str | None = None,
                  progress: Callable[[int], None] | None = None, decode: bool = True, grouping: str = "auto") -> dict:
    """Return a JSON-ready report; ``report["ok"]`` is False when any problem is an error.

    ``grouping``: ``subject``, ``image`` or ``auto`` (subject-level when the data has subject ids),
    as ``blastscope cv --grouping``; recorded in ``report["grouping"]``.
    """
    root = Path(root)
    problems: list[dict] = []
    report: dict = {"root": str(root), "layout": None, "grouping": None, "images": 0, "problems": problems}
    try:
        report["layout"] = detect_layout(root) if layout == "auto" else layout
        index = read_dataset(root, layout=report["layout"], subjects_csv=subjects_csv, problems=problems)
    except (IndexError_, ValueError) as e:
        problems.append({"file": str(root), "problem": str(e)})
        report["ok"] = False
        return report
    problems += [{"file": link, "problem": "symbolic link loop: left out of the data set", "severity": "warning"}
                 for link in symlink_loops(root)]
    report["grouping"] = resolve_grouping(index, grouping)
    report["images"] = len(index)
    labelled = index[index["label"].str.len() > 0]
    report["classes"] = {k: int(v) for k, v in labelled["label"].value_counts().sort_index().items()}
    report["unlabelled"] = int((index["label"].str.len() == 0).sum())
    with_subject = labelled[labelled["subject_id"].str.len() > 0]
    report["subjects"] = {c: int(g["subject_id"].nunique()) for c, g in with_subject.groupby("label")}
    report["subjects_total"] = int(with_subject["subject_id"].nunique())
    report["cells_per_subject"] = {s: int(n) for s, n in with_subject["subject_id"].value_counts().sort_index().items()}
    report["splits"] = {(k or "(none)"): int(v) for k, v in index["split"].value_counts().items()}
    folds = index[index["fold"] >= 0]
    report["folds"] = {str(int(f)): {c: int(n) for c, n in g["label"].value_counts().items()} for f, g in folds.groupby("fold")}
    if len(labelled) and not len(with_subject) and report["grouping"] == "image":
        problems.append({"file": str(root), "problem": "no subject ids: only image-level (optimistic) evaluation is possible; supply a subject CSV", "severity": "warning"})
    if report["layout"] == "cnmc":
        training = labelled[~labelled["split"].isin(("validation", "test"))]
        for c in CNMC_CLASSES:
            if not (training["label"] == c).any():
                problems.append({"file": str(root), "problem": f"class {c!r} has no training images"})
    present = set(labelled["label"])
    for f, counts in report["folds"].items():
        for c in sorted(present - set(counts)):
            problems.append({"file": str(root), "problem": f"dataset fold {f} has no {c!r} cells", "severity": "warning"})
    sizes: Counter = Counter()
    byte_digests: list[str] = []
    decoded: list[tuple[str, str, str, str]] = []
    if decode:
        for row in index.itertuples():
            try:
                byte_digests.append(file_digest(Path(row.path)))
            except OSError:
                byte_digests.append(f"unreadable:{row.path}")  # read_image reports it with the reason
            try:
                image = read_image(row.path)
            except ImageReadError as e:
                problems.append({"file": e.path, "problem": e.reason})
                continue
            finally:
                if progress:
                    progress(1)
            sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
            digest = hashlib.sha1(f"{image.shape}".encode() + image.tobytes()).hexdigest()
            decoded.append((row.path, row.subject_id, row.label, digest))
    report["sizes"] = dict(sizes.most_common())
    problems += [{"file": str(root), **p} if p["file"] == "sample index" else p
                 for p in index_problems(index, report["grouping"], byte_digests if decode else None)]
    if decoded:  # extra: equal pixels in files whose bytes differ (byte-identical ones are reported above)
        by_bytes = dict(zip(index["path"], byte_digests))
        groups = defaultdict(set)
        for path, _, _, digest in decoded:
            groups[digest].add(by_bytes[path])
        distinct = [d for d in decoded if len(groups[d[3]]) > 1]
        image_level = report["grouping"] == "image"
        if distinct:
            paths, subjects, labels, digests = map(list, zip(*distinct))
            subjects = [IMAGE_GROUP_PREFIX + p for p in paths] if image_level else subjects
            problems += duplicate_problems(paths, subjects, labels, digests,
                                           "identical pixels in files with different bytes (extra check, not made by cv)",
                                           "images" if image_level else "subjects")
    report["ok"] = not any(p.get("severity", "error") == "error" for p in problems)
    return report
