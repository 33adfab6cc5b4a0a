import numpy as np
import pytest
from sklearn.metrics import roc_curve

from blastscope.evaluation.operating_point import apply_threshold, threshold_for_sensitivity


def _case(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0] = 1
    s = np.round(rng.normal(size=n) + y, 1)  # rounding creates ties
    return y, s


def _sensitivity(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(np.sum((s >= t) & (y == 1)) / np.sum(y == 1))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_matches_brute_force_over_candidate_thresholds(seed: int, target: float) -> None:
    y, s = _case(seed)
    candidates = [t for t in np.unique(s) if _sensitivity(y, s, t) >= target]
    assert threshold_for_sensitivity(y, s, target) == max(candidates)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("target", [0.8, 0.95])
def test_matches_scikit_learn_roc_curve(seed: int, target: float) -> None:
    """roc_curve's thresholds use the same rule (score >= threshold is positive)."""
    y, s = _case(seed)
    _, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    assert threshold_for_sensitivity(y, s, target) == thresholds[tpr >= target].max()


def test_threshold_is_the_largest_meeting_the_target() -> None:
    """Invariant: sensitivity >= target at the threshold, < target just above it."""
    y, s = _case(9)
    t = threshold_for_sensitivity(y, s, 0.9)
    assert _sensitivity(y, s, t) >= 0.9
    assert _sensitivity(y, s, np.nextafter(t, np.inf)) < 0.9
    np.testing.assert_array_equal(apply_threshold(s, t), (s >= t).astype(int))


def test_exact_fraction_is_reached() -> None:
    y = np.ones(20, dtype=int)
    s = np.arange(20, dtype=float)  # 19/20 = 0.95 exactly: keep all but the lowest
    assert threshold_for_sensitivity(y, s, 0.95) == 1.0


@pytest.mark.parametrize("target", [0.0, -0.1, 1.01])
def test_invalid_target_raises(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        threshold_for_sensitivity(np.array([0, 1]), np.array([0.1, 0.9]), target)


def test_no_positives_raises() -> None:
    with pytest.raises(ValueError, match="0 positives"):
        threshold_for_sensitivity(np.zeros(4, int), np.linspace(0, 1, 4))
