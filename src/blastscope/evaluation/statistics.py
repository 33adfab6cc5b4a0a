"""Confidence intervals for proportions (Wilson) and for ROC AUC (DeLong), and the DeLong test.

Noshad & Fallahi (Spike-PCA-ResNet), section 2.4 and Table 5: 95% intervals by Wilson's
method for sensitivity, specificity and accuracy, and by DeLong's method for the AUC. The
authors' released script reports neither (and computes its AUC from hard labels); this module
is our own.

- Wilson score interval: the set of p not rejected by the two-sided score test,
  ``(p_hat + z^2/2n) / (1 + z^2/n) +- z / (1 + z^2/n) * sqrt(p_hat (1 - p_hat)/n + z^2/4n^2)``;
  same numbers as statsmodels ``proportion_confint(method="wilson")`` (statsmodels stays an
  optional dependency, used only in tests).
- DeLong, DeLong & Clarke-Pearson (1988) variance of the Mann-Whitney AUC, computed with the
  fast midrank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21(11)),
  O((m + n) log(m + n)) instead of O(m n). Ties count one half (midranks).
  The interval is the normal approximation ``auc +- z sqrt(var)``, clipped to [0, 1].
"""

from __future__ import annotations

import logging
import math

import numpy as np
from statistics import NormalDist

logger = logging.getLogger(__name__)

__all__ = ["wilson_interval", "delong_auc_ci", "delong_test", "mcnemar_test"]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got confidence={confidence}")
    return float(NormalDist().inv_cdf(0.5 + confidence / 2.0))  # the standard library: no scipy.stats at start-up


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Args:
        successes: number of successes, integer in [0, n].
        n: number of trials, integer >= 0.
        confidence: two-sided level in (0, 1).

    Returns:
        ``(low, high)`` with 0 <= low <= successes/n <= high <= 1 (rounding clipped). For ``n == 0`` the
        result is ``(0.0, 1.0)``: with no data the score test rejects no p, and this is
        also the limit of the formula as n -> 0. (The point estimate 0/0 stays undefined;
        callers report it as NaN.)
    """
    z = _z(confidence)
    for name, value in (("successes", successes), ("n", n)):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"{name} must be an integer, got {name}={value}")
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes} n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # analytically low <= p <= high, with equality at p = 0 and p = 1; rounding must not break that
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def _split_scores(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate binary labels and (n_scores, n_samples) scores; return positives, negatives."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"y_true must hold only 0 and 1, got values {np.unique(y)[:10].tolist()}")
    s = np.asarray(scores, dtype=float)
    if s.shape[-1] != y.shape[0]:
        raise ValueError(f"scores must have {y.shape[0]} samples like y_true, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    if m == 0 or n == 0:
        raise ValueError(f"DeLong needs both classes, got {m} positives and {n} negatives")
    if m == 1 or n == 1:
        logger.warning(
            "DeLong variance with %d positive(s) and %d negative(s) is degenerate: the side with a "
            "single sample contributes zero variance, so the interval is too narrow",
            m,
            n,
        )
    return s[..., pos], s[..., ~pos]


def _cov(v: np.ndarray) -> np.ndarray:
    """Sample covariance (ddof=1) of the rows of v (n_scores, n_obs); zero when n_obs == 1."""
    if v.shape[1] < 2:
        return np.zeros((v.shape[0], v.shape[0]))
    return np.atleast_2d(np.cov(v, ddof=1))


def _fast_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sun & Xu (2014) fast DeLong.

    Args:
        pos: (n_scores, m) scores of the positives; neg: (n_scores, n) of the negatives.

    Returns:
        ``aucs`` (n_scores,) and their covariance matrix (n_scores, n_scores)
        ``S10 / m + S01 / n`` where S10, S01 are the covariances of the placement values
        V10 (per positive: fraction of negatives scored below it, ties one half) and V01
        (per negative: fraction of positives scored above it). A side with one sample has
        no spread to estimate; its covariance term is set to 0 (documented degeneracy).
    """
    m, n = pos.shape[1], neg.shape[1]
    from scipy.stats import rankdata  # here: a lab's predict never needs scipy.stats

    t_x = rankdata(pos, axis=1)  # midranks within positives
    t_y = rankdata(neg, axis=1)  # midranks within negatives
    t_z = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # midranks in the pooled sample
    v10 = (t_z[:, :m] - t_x) / n
    v01 = 1.0 - (t_z[:, m:] - t_y) / m
    aucs = t_z[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    return aucs, _cov(v10) / m + _cov(v01) / n


def delong_auc_ci(
    y_true: np.ndarray, scores: np.ndarray, confidence: float = 0.95
) -> dict[str, float]:
    """ROC AUC with its DeLong variance and normal-approximation confidence interval.

    Args:
        y_true: (n_samples,) labels in {0, 1}, 1 = positive.
        scores: (n_samples,) continuous scores, larger = more positive (probabilities,
            logits; never hard labels).
        confidence: two-sided level in (0, 1).

    Returns:
        ``{"auc", "variance", "low", "high"}``; low/high are clipped to [0, 1]. With a
        single positive (or negative) that side's variance term is 0 and a warning is
        logged; with one of each the variance is 0 and the interval collapses onto the AUC.

    Raises:
        ValueError: if either class is absent (message names both counts).
    """
    z = _z(confidence)
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    pos, neg = _split_scores(y_true, s[None, :])
    aucs, cov = _fast_delong(pos, neg)
    auc, var = float(aucs[0]), float(max(cov[0, 0], 0.0))
    half = z * math.sqrt(var)
    return {"auc": auc, "variance": var, "low": max(0.0, auc - half), "high": min(1.0, auc + half)}


def delong_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> dict[str, float]:
    """Two-sided DeLong test of equal AUC for two scores on the same samples (paired).

    Args:
        y_true: (n_samples,) labels in {0, 1}.
        scores_a, scores_b: (n_samples,) scores of two classifiers on the same samples.

    Returns:
        ``{"auc_a", "auc_b", "difference" (a - b), "variance" (of the difference), "z",
        "p_value"}``. If the difference has zero variance (e.g. identical scores), z and
        p are 0.0 and 1.0 when the AUCs are equal, and inf and 0.0 when they differ.

    Raises:
        ValueError: if either class is absent or the score vectors differ in shape.
    """
    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b must be 1-D of equal length, got {a.shape} and {b.shape}")
    pos, neg = _split_scores(y_true, np.stack([a, b]))
    aucs, cov = _fast_delong(pos, neg)
    diff = float(aucs[0] - aucs[1])
    var = float(max(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1], 0.0))
    if var > 0.0:
        z = diff / math.sqrt(var)
        p = float(2.0 * NormalDist().cdf(-abs(z)))  # erfc-based: accurate for tiny p-values too
    else:
        z, p = (0.0, 1.0) if diff == 0.0 else (math.copysign(math.inf, diff), 0.0)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "variance": var, "z": z, "p_value": p}


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """Exact two-sided McNemar test of equal accuracy of two classifiers on the same samples (paired).

    Args:
        correct_a, correct_b: (n_samples,) bool, whether each classifier labelled the sample right.

    Returns:
        ``{"accuracy_a", "accuracy_b", "only_a" (a right, b wrong), "only_b", "p_value"}``: the
        binomial test of ``only_a`` among the ``only_a + only_b`` discordant samples at 1/2
        (p = 1.0 without discordant samples).
    """
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape or a.dtype != bool or b.dtype != bool:
        raise ValueError(f"correct_a and correct_b must be 1-D bool arrays of equal length, got {a.dtype} {a.shape} and {b.dtype} {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"accuracy_a": float(a.mean()) if a.size else float("nan"), "accuracy_b": float(b.mean()) if b.size else float("nan"),
            "only_a": only_a, "only_b": only_b, "p_value": p}
