"""Classification metrics for binary (C-NMC, ALL-IDB) and multi-class (ALL/AML/normal) results.

What is reported, and where it comes from:

- Gehlot, Gupta & Gupta, "SDCT-AuxNet-theta", Medical Image Analysis 2020, section 4.2:
  per-class F1 (eq. 7), weighted F1 (eq. 8: class F1 scores weighted by class support),
  balanced accuracy (eq. 9: (recall + specificity) / 2 for two classes).
- Noshad & Fallahi (Spike-PCA-ResNet), section 2.4, eqs. 5-9 and Table 5: per-class
  sensitivity, specificity, precision, F1, their class average, accuracy and ROC AUC.
- LeukemiaNet, Table 1: per-class TP, TN, FP, FN (one class against the rest), accuracy,
  precision, recall (sensitivity), specificity.

scikit-learn computes everything it offers (``confusion_matrix``,
``precision_recall_fscore_support``, ``f1_score``, ``balanced_accuracy_score``,
``accuracy_score``, ``roc_auc_score``); only TN and specificity are derived here from the
confusion matrix.

Conventions:

- Labels are integer class indices ``0 .. k-1`` into ``class_names``. For binary tasks class 1
  is the positive (cancer / ALL) class, class 0 the negative (normal / hem) class.
- Zero division: a ratio whose denominator is zero (precision with no predictions of the
  class, recall with no true members, specificity with no non-members) is reported as 0.0,
  the same as scikit-learn's ``zero_division=0.0``.
- Balanced accuracy is scikit-learn's: the mean recall over the classes present in
  ``y_true``. For two classes present it equals eq. 9 of the SDCT paper. Classes absent
  from ``y_true`` are left out (scikit-learn's warning about them is silenced here because
  this module documents the behaviour).
- Everything returned is plain Python (``int``, ``float``, ``list``, ``dict``), ready for
  ``metrics.json``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

logger = logging.getLogger(__name__)

__all__ = ["classification_report_table", "binary_summary"]


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {y_true.shape} and {y_pred.shape}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    if y_true.size == 0:
        raise ValueError("y_true is empty; metrics need at least one sample")
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        bad = arr[(arr < 0) | (arr >= num_classes)]
        if bad.size:
            raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got value {bad[0]}")
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        return float(balanced_accuracy_score(y_true, y_pred))


def classification_report_table(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> dict:
    """Per-class and overall metrics in the layout of LeukemiaNet Table 1 / Spike Table 5.

    Args:
        y_true: (n_samples,) integer true labels in ``[0, k)``.
        y_pred: (n_samples,) integer predicted labels in ``[0, k)``.
        class_names: k distinct names; ``class_names[i]`` names label ``i``. k >= 2.

    Returns:
        A JSON-ready dict::

            {
              "class_names": [...],
              "n_samples": int,
              "per_class": {name: {"tp", "tn", "fp", "fn", "support",
                                   "precision", "recall", "sensitivity" (= recall),
                                   "specificity", "f1"}},
              "macro": {"precision", "recall", "specificity", "f1"},   # unweighted class means
              "accuracy": float,
              "balanced_accuracy": float,   # mean recall over classes present in y_true
              "macro_f1": float,
              "weighted_f1": float,         # SDCT eq. 8
              "confusion_matrix": [[...]],  # k x k, rows = true class, columns = predicted
            }

        TP/TN/FP/FN of a class count it against all other classes (one-vs-rest).
        Ratios with a zero denominator are 0.0.
    """
    names = [str(n) for n in class_names]
    if len(names) < 2:
        raise ValueError(f"class_names must name at least 2 classes, got class_names={names}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct, got class_names={names}")
    k = len(names)
    y_true, y_pred = _check_labels(y_true, y_pred, k)
    labels = list(range(k))

    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0.0
    )
    n = int(cm.sum())
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = n - tp - fp - fn
    specificity = _safe_ratio(tn, tn + fp)

    per_class = {
        name: {
            "tp": int(tp[i]),
            "tn": int(tn[i]),
            "fp": int(fp[i]),
            "fn": int(fn[i]),
            "support": int(support[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "sensitivity": float(recall[i]),
            "specificity": float(specificity[i]),
            "f1": float(f1[i]),
        }
        for i, name in enumerate(names)
    }
    return {
        "class_names": names,
        "n_samples": n,
        "per_class": per_class,
        "macro": {
            "precision": float(np.mean(precision)),
            "recall": float(np.mean(recall)),
            "specificity": float(np.mean(specificity)),
            "f1": float(np.mean(f1)),
        },
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0.0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0.0)),
        "confusion_matrix": cm.astype(int).tolist(),
    }


def binary_summary(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba_pos: Sequence[float] | np.ndarray | None = None,
) -> dict:
    """The SDCT paper's headline numbers (F1 per class, WF1, BAC) plus accuracy and ROC AUC.

    Args:
        y_true: (n_samples,) true labels in {0, 1}; 1 is the positive (cancer) class.
        y_pred: (n_samples,) hard predicted labels in {0, 1}.
        proba_pos: optional (n_samples,) predicted PROBABILITY (or any continuous score) of
            class 1, in [0, 1]. AUC is computed from this only, never from ``y_pred``: an
            AUC from hard labels is a single ROC point, not the curve's area. A vector that
            holds only 0s and 1s is accepted (it cannot be told apart from saturated
            probabilities) but logs a warning.

    Returns:
        ``{"f1_negative", "f1_positive", "weighted_f1", "balanced_accuracy", "accuracy",
        "sensitivity", "specificity", "auc"}``. ``auc`` is None when ``proba_pos`` is None
        or when ``y_true`` holds a single class (AUC undefined, e.g. one subject of C-NMC,
        whose cells all share one label).
    """
    table = classification_report_table(y_true, y_pred, ["negative", "positive"])
    neg, pos = table["per_class"]["negative"], table["per_class"]["positive"]
    auc: float | None = None
    if proba_pos is not None:
        proba = np.asarray(proba_pos, dtype=float)
        if proba.shape != (table["n_samples"],):
            raise ValueError(
                f"proba_pos must have shape ({table['n_samples']},), got shape {proba.shape}"
            )
        if not np.all(np.isfinite(proba)) or proba.min() < 0.0 or proba.max() > 1.0:
            raise ValueError(
                f"proba_pos must be probabilities in [0, 1], got range "
                f"[{np.nanmin(proba)}, {np.nanmax(proba)}]"
            )
        if np.all((proba == 0.0) | (proba == 1.0)):
            logger.warning("proba_pos holds only 0/1 values; an AUC from hard labels is not a ROC area")
        y = np.asarray(y_true)
        if np.unique(y).size == 2:
            auc = float(roc_auc_score(y, proba))
        else:
            logger.info("AUC undefined: y_true holds a single class")
    return {
        "f1_negative": neg["f1"],
        "f1_positive": pos["f1"],
        "weighted_f1": table["weighted_f1"],
        "balanced_accuracy": table["balanced_accuracy"],
        "accuracy": table["accuracy"],
        "sensitivity": pos["recall"],
        "specificity": pos["specificity"],
        "auc": auc,
    }
