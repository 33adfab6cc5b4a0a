"""Class-conditional (Mondrian) split-conformal prediction sets: which cells a person must review.

Score of class ``c`` for a cell: ``s(x, c) = 1 - p_c(x)`` with ``p`` the model's (calibrated)
probability. On calibration cells (subjects that neither trained the model, nor chose its
checkpoint, temperature or operating point, nor are scored) the threshold of class ``c`` is the
``ceil((n_c + 1)(1 - alpha))``-th smallest score among the ``n_c`` calibration cells of class ``c``
(+inf when that rank exceeds ``n_c``: too few cells of the class for this ``alpha``, and then the
class is in every set). A cell's prediction set is ``{c : s(x, c) <= q_c}``.

What is guaranteed (Vovk's Mondrian conformal predictor): for a new cell whose (cell, label) pair
is exchangeable with the calibration cells of its class, ``P(true class in set | true class = c)
>= 1 - alpha`` for every class ``c``, on average over the calibration draw and the new cell. In
this toolkit the calibration cells come from whole subjects, so the statement holds for a cell
drawn from a new subject exchangeable with the calibration subjects, marginally over subjects and
their cells. What is NOT guaranteed: coverage for one particular patient, for a cell given its
appearance (conditional coverage), for subjects unlike the calibration ones (another lab, stain or
scanner: the out-of-domain check is there for that), or for cells of a class with too few
calibration cells (its threshold is infinite, which keeps the guarantee by never excluding it).

A cell is flagged for review when its set is not exactly its (voted) class: two or more classes
(the model cannot tell them apart at this error rate), none ("unlike anything trained on"), or
one class that is not the one the model answered.

Why a short implementation rather than crepes or MAPIE: the predictor is the ten lines below; the
toolkit needs its scores stored in a bundle and its thresholds recomputed for any ``alpha`` at
prediction time without the library's fitted objects (which are pickled), and the reference test
checks it against the p-value definition computed independently.
"""
from __future__ import annotations

import math

import numpy as np

from blastscope.evaluation.statistics import wilson_interval

__all__ = ["class_scores", "mondrian_thresholds", "prediction_sets", "set_flags", "coverage_report"]


def _check_alpha(alpha: float) -> float:
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got alpha={alpha}")
    return float(alpha)


def class_scores(proba: np.ndarray, y: np.ndarray, n_classes: int) -> list[np.ndarray]:
    """Sorted calibration scores ``1 - p_y`` of the cells of each class (what a bundle stores)."""
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y).astype(np.int64)
    s = 1.0 - proba[np.arange(len(y)), y]
    return [np.sort(s[y == c]) for c in range(n_classes)]


def mondrian_thresholds(scores: list[np.ndarray], alpha: float) -> np.ndarray:
    """Per-class thresholds ``q_c`` from each class's calibration scores (module docstring)."""
    alpha = _check_alpha(alpha)
    out = np.full(len(scores), np.inf)
    for c, s in enumerate(scores):
        s = np.sort(np.asarray(s, dtype=np.float64))
        rank = math.ceil((len(s) + 1) * (1.0 - alpha))
        if 1 <= rank <= len(s):
            out[c] = s[rank - 1]
    return out


def prediction_sets(proba: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Boolean N x K: class ``c`` is in the set of cell ``n`` when ``1 - p_c <= q_c``."""
    proba = np.asarray(proba, dtype=np.float64)
    return (1.0 - proba) <= np.asarray(thresholds)[None, :] + 1e-12


def set_flags(sets: np.ndarray, pred: np.ndarray | None = None) -> np.ndarray:
    """Per cell: "" (no review: the set is one class, ``pred`` where given), "ambiguous" (two or
    more classes), "empty", or "disagrees" (one class, not ``pred``)."""
    size = sets.sum(axis=1)
    flags = np.where(size == 1, "", np.where(size == 0, "empty", "ambiguous")).astype(object)
    if pred is not None:
        single = size == 1
        flags[single & (sets.argmax(axis=1) != np.asarray(pred))] = "disagrees"
    return flags.astype(str)


def coverage_report(sets: np.ndarray, y: np.ndarray, class_names: list[str], pred: np.ndarray | None = None) -> dict:
    """Empirical coverage per class with its Wilson 95% CI, the review rate (cells flagged by
    :func:`set_flags`, with the model's labels ``pred`` where given), and the error rate of the
    cells NOT flagged (their one class against the label)."""
    y = np.asarray(y).astype(np.int64)
    covered = sets[np.arange(len(y)), y] if len(y) else np.zeros(0, bool)
    per_class = {}
    for c, name in enumerate(class_names):
        m = y == c
        k, n = int(covered[m].sum()), int(m.sum())
        low, high = wilson_interval(k, n) if n else (float("nan"), float("nan"))
        per_class[name] = {"cells": n, "covered": k, "coverage": k / n if n else float("nan"), "ci": [low, high]}
    flags = set_flags(sets, pred)
    kept = flags == ""
    errors = int((sets[kept].argmax(axis=1) != y[kept]).sum())
    low, high = wilson_interval(errors, int(kept.sum())) if kept.any() else (float("nan"), float("nan"))
    return {"cells": int(len(y)), "coverage": per_class, "review_rate": float((~kept).mean()) if len(y) else float("nan"),
            "ambiguous": int((flags == "ambiguous").sum()), "empty": int((flags == "empty").sum()),
            "disagrees": int((flags == "disagrees").sum()),
            "not_flagged": int(kept.sum()), "error_not_flagged": errors / int(kept.sum()) if kept.any() else float("nan"),
            "error_not_flagged_ci": [low, high]}
