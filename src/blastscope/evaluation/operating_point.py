"""High-sensitivity operating point: a score threshold chosen on validation data.

Noshad & Fallahi (Spike-PCA-ResNet), section 2.4 and section 3: the model's probabilities are
binarised at a cutoff and results are reported "at its high-sensitivity operating point"
(Table 5). The paper does not say how the cutoff was found nor on which data; the released
script reports hard-label metrics only. Here the threshold is chosen on VALIDATION data and
the caller applies it unchanged to the test set (choosing it on the test set would be a leak).

Decision rule: a sample is positive when ``score >= threshold``. Deliberate difference: the
paper calls a sample positive when its probability is strictly higher than the cutoff; with
``>=`` the largest threshold reaching a target sensitivity is attained (it is a positive's
score), whereas with ``>`` only a supremum exists.
"""

from __future__ import annotations

import numpy as np

__all__ = ["threshold_for_sensitivity", "apply_threshold"]


def threshold_for_sensitivity(y_true: np.ndarray, scores: np.ndarray, target: float = 0.95) -> float:
    """Largest threshold whose rule ``score >= threshold`` has sensitivity >= ``target``.

    The largest such threshold maximises specificity among all thresholds meeting the
    target. It is the k-th largest positive score, k the smallest count with k/m >= target.

    Args:
        y_true: (n_samples,) labels in {0, 1}, 1 = positive; at least one positive.
        scores: (n_samples,) finite scores, larger = more positive.
        target: required sensitivity in (0, 1].

    Returns:
        The threshold (a float equal to one of the positives' scores).
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got target={target}")
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"y_true and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"y_true must hold only 0 and 1, got values {np.unique(y)[:10].tolist()}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    pos = np.sort(s[y == 1])[::-1]
    m = pos.size
    if m == 0:
        raise ValueError(f"need at least one positive to set a sensitivity threshold, got 0 positives of {y.size}")
    reached = np.arange(1, m + 1) / m >= target  # same float comparison a caller's tp/m makes
    k = int(np.argmax(reached)) + 1
    return float(pos[k - 1])


def apply_threshold(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Labels (n_samples,) int64 in {0, 1}: 1 where ``score >= threshold``."""
    return (np.asarray(scores, dtype=float) >= threshold).astype(np.int64)
