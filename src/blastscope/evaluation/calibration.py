"""Calibration of class probabilities: temperature scaling, ECE, Brier score, NLL, reliability curves.

None of the four papers calibrates its scores; this is the toolkit's addition for laboratory use,
where "confidence 0.9" must mean "right about 9 times in 10".

- **Temperature scaling** (Guo et al. 2017): one scalar ``T > 0`` per fold model, ``softmax(z / T)``
  with ``z`` the CNN's logits. The stored log-probabilities differ from the logits by one constant
  per cell, which the softmax cancels, so ``softmax(log p / T)`` is exactly the scaled softmax. ``T``
  minimises the negative log-likelihood on the fold's selection cells (training subjects that did
  not train the network) and never on scored cells. It rescales confidence and keeps every label.
- **ECE** (expected calibration error, top-label): cells are binned by their top probability; ECE
  is the cell-weighted mean over bins of ``|accuracy - mean confidence|``. ``binning="mass"``
  (the default here) uses bins with equal numbers of cells, so that no bin is nearly empty;
  ``"width"`` uses equal-width bins on [0, 1], the definition torchmetrics' ``CalibrationError``
  (``norm="l1"``) computes. Its confidence interval is a bootstrap over SUBJECTS (cells of one
  patient are not independent), :func:`ece_interval`.
- **Brier score**: mean over cells of ``sum_k (p_k - [y = k])^2`` (0 best, 2 worst).
- **NLL**: mean ``-log p_y`` (probabilities clipped at 1e-12).
"""
from __future__ import annotations

import numpy as np

__all__ = ["fit_temperature", "apply_temperature", "ece", "ece_interval", "brier_score", "nll",
           "reliability_curve", "calibration_summary"]

_EPS = 1e-12


def _check(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y).astype(np.int64)
    if proba.ndim != 2 or len(proba) != len(y):
        raise ValueError(f"proba must be N x K with one label per row, got {proba.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= proba.shape[1]):
        raise ValueError(f"labels must be in 0..{proba.shape[1] - 1}")
    return proba, y


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log proba / T)``: rows of ``proba`` (probabilities) rescaled by the temperature ``T > 0``."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    z = np.log(np.clip(np.asarray(proba, dtype=np.float64), _EPS, None)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the NLL of ``apply_temperature(proba, T)`` on labels ``y``.

    A bounded one-dimensional search over ``log T`` (SciPy's ``minimize_scalar``). With no cells,
    or when every cell is predicted right, the NLL keeps falling as ``T -> 0`` (any sharpening
    "helps"), so no temperature can be estimated and 1.0 (no scaling) is returned.
    """
    from scipy.optimize import minimize_scalar

    proba, y = _check(proba, y)
    if len(y) == 0 or (proba.argmax(axis=1) == y).all():
        return 1.0
    logp = np.log(np.clip(proba, _EPS, None))

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    best = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x)) if best.fun < loss(0.0) else 1.0


def _bins(confidence: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """Bin index of every cell."""
    if binning == "width":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        # torchmetrics' convention: bin b holds (edge_b, edge_{b+1}]; a confidence of 0 joins bin 0
        return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    if binning == "mass":
        order = np.argsort(confidence, kind="stable")
        out = np.empty(len(confidence), dtype=np.int64)
        out[order] = np.arange(len(confidence)) * n_bins // max(len(confidence), 1)
        return out
    raise ValueError(f"binning must be mass or width, got binning={binning!r}")


def ece(proba: np.ndarray, y: np.ndarray, n_bins: int = 10, binning: str = "mass") -> float:
    """Top-label expected calibration error (module docstring); NaN for no cells."""
    proba, y = _check(proba, y)
    if len(y) == 0:
        return float("nan")
    confidence, correct = proba.max(axis=1), (proba.argmax(axis=1) == y).astype(np.float64)
    b = _bins(confidence, n_bins, binning)
    total = 0.0
    for k in np.unique(b):
        m = b == k
        total += m.sum() * abs(correct[m].mean() - confidence[m].mean())
    return float(total / len(y))


def ece_interval(proba: np.ndarray, y: np.ndarray, groups: np.ndarray, n_bins: int = 10, binning: str = "mass",
                 n_boot: int = 500, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`ece`, resampling SUBJECTS (``groups``) with replacement.

    With fewer than two subjects there is nothing to resample and the interval is (NaN, NaN).
    """
    proba, y = _check(proba, y)
    groups = np.asarray(groups)
    names, inverse = np.unique(groups, return_inverse=True)
    if len(names) < 2:
        return float("nan"), float("nan")
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(names), len(names))])
        values.append(ece(proba[rows], y[rows], n_bins, binning))
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def brier_score(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean over cells of the squared distance between ``proba`` and the one-hot label."""
    proba, y = _check(proba, y)
    if len(y) == 0:
        return float("nan")
    onehot = np.eye(proba.shape[1])[y]
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (probabilities clipped at 1e-12)."""
    proba, y = _check(proba, y)
    if len(y) == 0:
        return float("nan")
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], _EPS, None)).mean())


def reliability_curve(proba: np.ndarray, y: np.ndarray, n_bins: int = 10, binning: str = "mass") -> list[dict]:
    """Per bin: cells, mean confidence, accuracy (the points of a reliability diagram)."""
    proba, y = _check(proba, y)
    if len(y) == 0:
        return []
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    b = _bins(confidence, n_bins, binning)
    return [{"cells": int((b == k).sum()), "confidence": float(confidence[b == k].mean()),
             "accuracy": float(correct[b == k].mean())} for k in np.unique(b)]


def calibration_summary(proba: np.ndarray, y: np.ndarray, groups: np.ndarray, n_bins: int = 10,
                        seed: int = 0) -> dict:
    """ECE (equal-mass bins) with its subject-bootstrap CI, Brier score, NLL, reliability points."""
    low, high = ece_interval(proba, y, groups, n_bins, seed=seed)
    return {"cells": int(len(y)), "subjects": int(len(np.unique(groups))), "ece": ece(proba, y, n_bins),
            "ece_ci": [low, high], "brier": brier_score(proba, y), "nll": nll(proba, y),
            "n_bins": n_bins, "binning": "mass", "reliability": reliability_curve(proba, y, n_bins)}
