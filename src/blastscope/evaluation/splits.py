"""Subject-level cross-validation folds with a leakage check.

Gehlot et al. 2020 section 2 / Table 1: folds are made at the subject level ("all cells belonging
to a subject are placed in the same fold") with about equal class proportions. scikit-learn's
``StratifiedGroupKFold`` does exactly this. Image-level folds exist only to measure how much a
random split inflates scores; every output made with them is labelled ``image-level``.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

__all__ = ["LeakageError", "assign_folds", "check_no_leakage", "fold_masks", "inner_split"]

FoldSource = Literal["subject", "dataset", "image"]


class LeakageError(ValueError):
    """A subject has cells on both sides of a split."""


def assign_folds(index: pd.DataFrame, n_splits: int, seed: int = 0, mode: FoldSource = "subject") -> np.ndarray:
    """Return one fold number (0..n_splits-1) per row of ``index``.

    ``mode="subject"``: ``StratifiedGroupKFold`` over ``subject_id`` (required, non-empty);
    ``mode="dataset"``: the dataset's own ``fold`` column (C-NMC ``fold_0..2``), renumbered 0..k-1;
    ``mode="image"``: ``StratifiedKFold`` over images, ignoring subjects (leaky, labelled).
    """
    labels = index["label"].to_numpy()
    if mode == "dataset":
        folds = index["fold"].to_numpy()
        if (folds < 0).any():
            raise ValueError("mode='dataset' needs the dataset's own folds, but some rows have fold=-1")
        _, renumbered = np.unique(folds, return_inverse=True)
        return renumbered.astype(int)
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got n_splits={n_splits}")
    out = np.full(len(index), -1, dtype=int)
    if mode == "image":
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(index)), labels)):
            out[test] = k
        return out
    if mode != "subject":
        raise ValueError(f"mode must be 'subject', 'dataset' or 'image', got mode={mode!r}")
    groups = index["subject_id"].to_numpy()
    if (index["subject_id"].str.len() == 0).any():
        raise ValueError("subject-level folds need a subject id on every row; use mode='image' only to measure leakage")
    n_subjects = len(np.unique(groups))
    if n_subjects < n_splits:
        raise ValueError(f"n_splits={n_splits} exceeds the number of subjects ({n_subjects})")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(index)), labels, groups)):
        out[test] = k
    check_no_leakage(out, groups)
    return out


def check_no_leakage(folds: np.ndarray, groups: np.ndarray) -> None:
    """Raise :class:`LeakageError` if any group appears in more than one fold."""
    frame = pd.DataFrame({"fold": folds, "group": groups})
    spread = frame.groupby("group")["fold"].nunique()
    leaked = spread[spread > 1]
    if len(leaked):
        raise LeakageError(f"subjects split across folds: {', '.join(map(str, leaked.index[:10]))}")


def fold_masks(folds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train mask, validation mask) for fold ``k``."""
    val = folds == k
    return ~val, val


def inner_split(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split one fold's training rows into ``fit`` rows and ``select`` rows, by group (subject).

    The "select" rows (about ``1 / n_splits`` of the groups) make every choice of the fold: the
    best epoch, the Platt scaling of the auxiliary SVM, the operating point. The "fit" rows train
    the network and the SVM. Neither touches the outer (scored) fold. ``StratifiedGroupKFold``
    (shuffled with ``seed``) proposes ``n_splits`` candidate splits; the first whose both sides
    hold every class of ``labels`` is taken (else the first with the most classes on the select
    side). ``n_splits`` is lowered to the smallest number of groups of one class (at least 2),
    so that with two or more subjects of every class both sides can hold every class.

    Args:
        labels: (n,) class labels of the training rows.
        groups: (n,) subject ids (or file paths for image-level runs).
        n_splits: >= 2.
    Returns:
        ``fit`` and ``select``: sorted positions into ``labels``; no group is on both sides.
    Raises:
        ValueError: fewer than two groups.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got n_splits={n_splits}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"an inner selection split needs at least 2 subjects among the training rows, got {n_groups}")
    per_class = pd.DataFrame({"g": groups, "y": labels}).groupby("y")["g"].nunique()
    splitter = StratifiedGroupKFold(n_splits=max(2, min(n_splits, int(per_class.min()))), shuffle=True, random_state=seed)
    classes = set(labels.tolist())
    best, best_score = None, -1
    for fit, select in splitter.split(np.zeros(len(labels)), labels, groups):
        score = len(set(labels[select].tolist())) + len(set(labels[fit].tolist()))
        if score > best_score:
            best, best_score = (fit, select), score
        if score == 2 * len(classes):
            break
    fit, select = best
    side = np.zeros(len(labels), dtype=int)
    side[select] = 1
    check_no_leakage(side, groups)
    return np.sort(fit), np.sort(select)
