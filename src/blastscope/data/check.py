"""``blastscope data check``: find every problem of a data folder at once, before training does.

Reports the detected layout, counts per class, subject and fold, image sizes and channel modes, and
problems: unreadable files (with the reason), names that do not parse, missing labels or subject
ids, subjects with two labels, empty classes (C-NMC), dataset folds without one of the classes
(a warning), and the same pixels under two subjects or two classes (a leak that subject-level
splitting cannot see). ``report["ok"]`` is False when any problem is an error (not a warning).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from blastscope.data.decode import ImageReadError, read_image
from blastscope.data.index import IndexError_
from blastscope.data.readers import detect_layout, read_dataset

__all__ = ["check_dataset", "duplicate_problems"]

logger = logging.getLogger(__name__)

CNMC_CLASSES = ("all", "hem")


def duplicate_problems(paths: list[str], subject_ids: list[str], labels: list[str], digests: list[str],
                       what: str = "identical pixels") -> list[dict]:
    """One problem per group of equal ``digests`` whose files carry two subjects or two classes.

    The same content under two subjects defeats subject-level splitting (it can land in training
    and validation); under two classes it is a contradictory label.
    """
    groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for item in zip(digests, paths, subject_ids, labels):
        groups[item[0]].append(item[1:])
    problems = []
    for items in groups.values():
        subjects = {s for _, s, _ in items if s}
        classes = {lab for _, _, lab in items if lab}
        kinds = [k for k, n in (("two subjects", len(subjects)), ("two classes", len(classes))) if n > 1]
        if kinds:
            problems.append({"file": items[0][0], "problem": f"{what} under {' and '.join(kinds)}: " + ", ".join(p for p, _, _ in items)})
    return problems


def check_dataset(root: Path | str, layout: str = "auto", subjects_csv: Path | str | None = None,
                  progress: Callable[[int], None] | None = None, decode: bool = True) -> dict:
    """Return a JSON-ready report; ``report["ok"]`` is False when any problem was found."""
    root = Path(root)
    problems: list[dict] = []
    report: dict = {"root": str(root), "layout": None, "images": 0, "problems": problems}
    try:
        report["layout"] = detect_layout(root) if layout == "auto" else layout
        index = read_dataset(root, layout=report["layout"], subjects_csv=subjects_csv, problems=problems)
    except (IndexError_, ValueError) as e:
        problems.append({"file": str(root), "problem": str(e)})
        report["ok"] = False
        return report
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
    if len(labelled) and not len(with_subject):
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
    two_labels = with_subject.groupby("subject_id")["label"].nunique()
    for subject in two_labels[two_labels > 1].index:
        problems.append({"file": str(root), "problem": f"subject {subject} has cells with two labels"})
    sizes: Counter = Counter()
    decoded: list[tuple[str, str, str, str]] = []
    if decode:
        for row in index.itertuples():
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
    if decoded:
        problems += duplicate_problems(*map(list, zip(*decoded)))
    report["ok"] = not any(p.get("severity", "error") == "error" for p in problems)
    return report
