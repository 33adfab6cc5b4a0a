"""The confidence rule theta of SDCT-AuxNet-theta: the CNN answers when sure, else the SVM.

Gehlot, Gupta & Gupta, "SDCT-AuxNet-theta", Medical Image Analysis 2020, section 3.4.2,
eqs. 4-5: ``tau = max_c P(y = c)``; the CNN's argmax label is kept when ``tau > theta``, and
the auxiliary classifier's label is used otherwise (also when ``tau == theta``). Released
code: the SVM answers when the CNN's top probability is ``<= theta``, default theta = 0.9 —
the same rule. Section 4.5.1 / Table 5 and Fig. 10 sweep theta over 0.6, 0.65, ..., 0.95;
Table 6 compares theta = 0 (CNN only), 0.9 and 1 (SVM only); Table 8 counts how many test
samples each classifier answered at theta = 0.9.

Extremes: with probabilities summing to 1 over k classes, ``tau >= 1/k > 0``, so theta = 0
lets the CNN answer every sample (SDCT-AuxNet0 = SDCT-Net); ``tau <= 1`` so theta = 1 hands
every sample to the SVM (SDCT-AuxNet1).

Generalisation: the paper states eqs. 4-5 for two classes; they are applied unchanged to k
classes. A CNN tie between classes resolves to the lower class index (eq. 2 picks class 0
unless P1 > P0 strictly).

This module sits in ``estimators`` and therefore uses scikit-learn's metrics directly rather
than ``blastscope.evaluation`` (a higher layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["theta_combine", "theta_sweep", "contribution_counts", "TABLE5_THETAS"]

TABLE5_THETAS: tuple[float, ...] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""The confidence probabilities of the SDCT paper's Table 5."""

SOURCES: tuple[str, str] = ("cnn", "svm")


def _check_theta(theta: float) -> float:
    if not (isinstance(theta, (int, float, np.floating, np.integer)) and 0.0 <= float(theta) <= 1.0):
        raise ValueError(f"theta must be in [0, 1], got theta={theta}")
    return float(theta)


def _check_inputs(cnn_proba: np.ndarray, aux_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(cnn_proba, dtype=np.float64)
    aux = np.asarray(aux_pred)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"cnn_proba must have shape (n_samples, n_classes >= 2), got {proba.shape}")
    if aux.shape != (proba.shape[0],):
        raise ValueError(f"aux_pred must have shape ({proba.shape[0]},), got {aux.shape}")
    if not np.issubdtype(aux.dtype, np.integer):
        raise ValueError(f"aux_pred must hold integer class indices, got dtype {aux.dtype}")
    if not np.all(np.isfinite(proba)) or proba.min(initial=0.0) < 0.0 or proba.max(initial=0.0) > 1.0:
        raise ValueError("cnn_proba must be probabilities in [0, 1] (apply softmax to logits first)")
    sums = proba.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = sums[np.argmax(np.abs(sums - 1.0))]
        raise ValueError(f"cnn_proba rows must sum to 1 (apply softmax to logits first), got a row sum of {worst}")
    return proba, aux.astype(np.int64)


def theta_combine(cnn_proba: np.ndarray, aux_pred: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Final labels of SDCT-AuxNet-theta (eqs. 4-5).

    Args:
        cnn_proba: (n_samples, k) softmax probabilities of the CNN, rows summing to 1.
        aux_pred: (n_samples,) integer labels of the auxiliary classifier.
        theta: confidence probability in [0, 1].

    Returns:
        ``pred`` (n_samples,) int64 labels and ``source`` (n_samples,) strings, "cnn" where
        ``max(cnn_proba) > theta`` and "svm" elsewhere.
    """
    theta = _check_theta(theta)
    proba, aux = _check_inputs(cnn_proba, aux_pred)
    use_cnn = proba.max(axis=1) > theta
    pred = np.where(use_cnn, np.argmax(proba, axis=1), aux)
    source = np.where(use_cnn, SOURCES[0], SOURCES[1])
    return pred.astype(np.int64), source


def theta_sweep(
    cnn_proba: np.ndarray,
    aux_pred: np.ndarray,
    y_true: np.ndarray,
    thetas: Sequence[float] = TABLE5_THETAS,
    class_names: Sequence[str] | None = None,
) -> list[dict[str, float]]:
    """Scores of the combined prediction for each theta (SDCT Table 5, Fig. 10).

    Args:
        cnn_proba: (n_samples, k) CNN probabilities; aux_pred: (n_samples,) SVM labels.
        y_true: (n_samples,) true integer labels in [0, k).
        thetas: confidence probabilities in [0, 1] (default: Table 5's 0.6 ... 0.95).
        class_names: k names for the per-class F1 keys (default "0", "1", ...).

    Returns:
        One flat row per theta (ready for ``pandas.DataFrame``/CSV): ``theta``,
        ``weighted_f1`` (eq. 8), ``balanced_accuracy`` (eq. 9; scikit-learn, mean recall
        over classes present), ``f1_<name>`` per class (zero division -> 0.0), and
        ``svm_share``, the fraction of samples answered by the auxiliary classifier.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score  # here: predict never needs scikit-learn

    proba, aux = _check_inputs(cnn_proba, aux_pred)
    k = proba.shape[1]
    y = np.asarray(y_true)
    if y.shape != aux.shape:
        raise ValueError(f"y_true must have shape {aux.shape}, got {y.shape}")
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"class_names must have {k} entries, got class_names={names}")
    labels = list(range(k))
    rows = []
    for theta in thetas:
        pred, source = theta_combine(proba, aux, theta)
        f1 = f1_score(y, pred, labels=labels, average=None, zero_division=0.0)
        row = {
            "theta": float(theta),
            "weighted_f1": float(f1_score(y, pred, labels=labels, average="weighted", zero_division=0.0)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        }
        row.update({f"f1_{name}": float(f1[i]) for i, name in enumerate(names)})
        row["svm_share"] = float(np.mean(source == SOURCES[1]))
        rows.append(row)
    return rows


def contribution_counts(source: np.ndarray, correct: np.ndarray) -> dict[str, dict[str, int]]:
    """How many samples each classifier answered, and how many of those correctly (Table 8).

    Table 8 of the paper lists, per fold model, the samples answered by the "Neural Network"
    and by the "Auxiliary Classifier" and the total; the correct counts are our addition.

    Args:
        source: (n_samples,) strings "cnn"/"svm" from ``theta_combine``.
        correct: (n_samples,) bool, whether the final label equals the true label.

    Returns:
        ``{"cnn": {"answered", "correct"}, "svm": {...}, "total": {...}}`` of ints.
    """
    src = np.asarray(source)
    ok = np.asarray(correct)
    if src.ndim != 1 or ok.shape != src.shape:
        raise ValueError(f"source and correct must be 1-D of equal length, got {src.shape} and {ok.shape}")
    if ok.dtype != bool:
        raise ValueError(f"correct must be a bool array, got dtype {ok.dtype}")
    unknown = set(np.unique(src).tolist()) - set(SOURCES)
    if unknown:
        raise ValueError(f"source must hold only {SOURCES}, got {sorted(unknown)}")
    out = {name: {"answered": int(np.sum(src == name)), "correct": int(np.sum(ok & (src == name)))} for name in SOURCES}
    out["total"] = {"answered": int(src.size), "correct": int(ok.sum())}
    return out
