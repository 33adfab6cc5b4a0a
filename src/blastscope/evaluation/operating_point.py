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

The positive side is one class or a SET of classes (``data.positive`` is a name or a list of
names; our addition, e.g. "any of the three ALL subtypes" against "benign" on the Taleqani smear
set). A set is scored by the sum of its members' probabilities, ``p(set) = sum_c p_c`` (the
probability that the cell belongs to one of them), and a cell is a positive when its true class is
in the set. Binary names (:func:`binary_names`): two classes keep their own names; one positive
class of several is ``"<c>"`` against ``"not <c>"``; a set is ``"positive (<a>, <b>)"`` against
``"negative (<others>)"``, members in ``class_names`` order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from blastscope.config import check_positive

__all__ = [
    "threshold_for_sensitivity", "apply_threshold", "normalize_positive", "positive_classes", "binary_names",
    "binary_positive", "positive_score", "is_positive",
]


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


# ------------------------------------------------------------------------------- the positive side
def normalize_positive(class_names: Sequence[str], positive: str | Sequence[str]) -> str | list[str]:
    """``positive`` as stored in run.json / metrics.json / bundle.json: a class name, or a list of
    two or more names in ``class_names`` order (a one-name list becomes that name).

    The same check as ``data.positive`` (:func:`blastscope.config.check_positive`).

    Raises:
        ValueError: naming the bad value (unknown or repeated names, an empty list, or a set
            holding every class, which leaves no negative class).
    """
    return check_positive(positive, class_names, where="positive", classes_name="the classes")


def positive_classes(class_names: Sequence[str], positive: str | Sequence[str]) -> list[str]:
    """The positive class names (one or more), in ``class_names`` order."""
    p = normalize_positive(class_names, positive)
    return [p] if isinstance(p, str) else p


def binary_names(class_names: Sequence[str], positive: str | Sequence[str]) -> list[str]:
    """``[negative name, positive name]`` of the binary question, or ``class_names`` themselves for two classes.

    Examples: ``["hem", "all"]``; ``["not early_malignant", "early_malignant"]``;
    ``["negative (benign)", "positive (early_malignant, pre_malignant, pro_malignant)"]``.
    """
    pos = positive_classes(class_names, positive)
    if len(class_names) == 2:
        return [str(c) for c in class_names]
    if len(pos) == 1:
        return [f"not {pos[0]}", pos[0]]
    neg = [c for c in class_names if c not in pos]
    return [f"negative ({', '.join(neg)})", f"positive ({', '.join(pos)})"]


def binary_positive(class_names: Sequence[str], positive: str | Sequence[str]) -> str:
    """The positive name among :func:`binary_names` (the class itself for one positive class)."""
    pos = positive_classes(class_names, positive)
    return pos[0] if len(pos) == 1 else binary_names(class_names, positive)[1]


def positive_score(proba: Mapping[str, Sequence[float]], class_names: Sequence[str],
                   positive: str | Sequence[str]) -> np.ndarray:
    """(n_samples,) float score of the positive side: ``p_<c>`` of one class, or the SUM of the
    ``p_<c>`` columns of a set (values in [0, 1] for probabilities).

    Args:
        proba: columns ``p_<class>`` (a DataFrame or any mapping), each (n_samples,).
    """
    cols = [np.asarray(proba[f"p_{c}"], dtype=float) for c in positive_classes(class_names, positive)]
    return cols[0].copy() if len(cols) == 1 else np.sum(cols, axis=0)


def is_positive(y: np.ndarray, class_names: Sequence[str], positive: str | Sequence[str]) -> np.ndarray:
    """(n_samples,) bool: integer labels ``y`` (indices into ``class_names``) that are positive."""
    ids = [list(class_names).index(c) for c in positive_classes(class_names, positive)]
    return np.isin(np.asarray(y, dtype=int), ids)
