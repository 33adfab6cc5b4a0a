import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from blastscope.evaluation.statistics import delong_auc_ci, delong_test, wilson_interval

# ---------------------------------------------------------------- Wilson


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels_on_grid(confidence: float) -> None:
    statsmodels_proportion = pytest.importorskip("statsmodels.stats.proportion", reason="statsmodels not installed")
    for n in (1, 2, 3, 5, 10, 37, 100, 1000):
        for successes in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            low, high = wilson_interval(successes, n, confidence)
            ref_low, ref_high = statsmodels_proportion.proportion_confint(
                successes, n, alpha=1 - confidence, method="wilson"
            )
            assert low == pytest.approx(max(ref_low, 0.0), abs=1e-12)
            assert high == pytest.approx(min(ref_high, 1.0), abs=1e-12)
            assert 0.0 <= low <= successes / n <= high <= 1.0


def test_wilson_reproduces_spike_paper_all_idb_intervals() -> None:
    """Spike-PCA-ResNet section 3 (ALL-IDB, all correct): lower bounds 0.70 (n=9), 0.851 (n=22),
    0.771 (n=13) on the holdout set and 0.988 (n=308), 0.977 (n=160), 0.974 (n=148) on validation."""
    for n, paper_low in [(9, 0.70), (22, 0.851), (13, 0.771), (308, 0.988), (160, 0.977), (148, 0.974)]:
        low, high = wilson_interval(n, n)
        assert low == pytest.approx(paper_low, abs=1e-3)
        assert high == pytest.approx(1.0)


def test_wilson_n_zero_is_whole_unit_interval() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    "successes, n, confidence",
    [(3, 2, 0.95), (-1, 5, 0.95), (1, -1, 0.95), (1.5, 3, 0.95), (1, 3, 1.0), (1, 3, 0.0)],
)
def test_wilson_invalid_inputs_raise(successes, n, confidence) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, n, confidence)


# ---------------------------------------------------------------- DeLong


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _brute_force_placements(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) placement values by the O(m n) double loop."""
    xs, ys = s[y == 1], s[y == 0]
    v10 = np.array([np.mean([_psi(x, yy) for yy in ys]) for x in xs])
    v01 = np.array([np.mean([_psi(x, yy) for x in xs]) for yy in ys])
    return v10, v01


def _sample_cov(a: np.ndarray, b: np.ndarray) -> float:
    """ddof=1 covariance; a side with a single observation contributes 0 (module convention)."""
    if len(a) < 2:
        return 0.0
    return float(np.sum((a - a.mean()) * (b - b.mean())) / (len(a) - 1))


def _brute_force_variance(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    v10, v01 = _brute_force_placements(y, s)
    m, n = len(v10), len(v01)
    return float(v10.mean()), _sample_cov(v10, v10) / m + _sample_cov(v01, v01) / n


def _random_case(seed: int, n: int, with_ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.normal(size=n) + 0.8 * y
    if with_ties:
        s = np.round(s * 2) / 2
    return y, s


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_ties", [False, True])
def test_delong_matches_brute_force_and_sklearn(seed: int, with_ties: bool) -> None:
    y, s = _random_case(seed, 40, with_ties)
    out = delong_auc_ci(y, s)
    auc, var = _brute_force_variance(y, s)
    assert out["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert out["auc"] == pytest.approx(auc, abs=1e-12)
    assert out["variance"] == pytest.approx(var, rel=1e-10, abs=1e-15)
    half = norm.ppf(0.975) * math.sqrt(var)
    assert out["low"] == pytest.approx(max(0.0, auc - half), abs=1e-12)
    assert out["high"] == pytest.approx(min(1.0, auc + half), abs=1e-12)


@pytest.mark.parametrize("n_pos, n_neg", [(1, 7), (7, 1), (1, 1)])
def test_delong_single_sample_side_matches_brute_force_convention(n_pos: int, n_neg: int, caplog) -> None:
    rng = np.random.default_rng(n_pos * 10 + n_neg)
    y = np.array([1] * n_pos + [0] * n_neg)
    s = np.round(rng.normal(size=y.size), 1)
    with caplog.at_level(logging.WARNING):
        out = delong_auc_ci(y, s)
    assert "degenerate" in caplog.text
    auc, var = _brute_force_variance(y, s)
    assert out["auc"] == pytest.approx(auc)
    assert out["variance"] == pytest.approx(var, abs=1e-15)
    if n_pos == n_neg == 1:
        assert out["variance"] == 0.0 and out["low"] == out["high"] == out["auc"]


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1]])
def test_delong_missing_class_names_counts(y) -> None:
    with pytest.raises(ValueError, match=r"\d+ positives and \d+ negatives"):
        delong_auc_ci(np.array(y), np.linspace(0, 1, len(y)))


def test_delong_rejects_non_binary_labels_and_nan() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        delong_auc_ci(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="finite"):
        delong_auc_ci(np.array([0, 1]), np.array([0.1, np.nan]))


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=30),
    data=st.data(),
    confidence=st.floats(0.5, 0.999),
)
def test_delong_interval_properties(labels, data, confidence) -> None:
    """Invariant: 0 <= low <= auc <= high <= 1, variance >= 0, auc equals scikit-learn's."""
    y = np.array(labels)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    s = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=y.size, max_size=y.size)), float)
    out = delong_auc_ci(y, s, confidence)
    assert 0.0 <= out["low"] <= out["auc"] <= out["high"] <= 1.0
    assert out["variance"] >= 0.0
    assert out["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_delong_test_matches_brute_force_covariance(seed: int) -> None:
    y, a = _random_case(seed, 50, with_ties=True)
    rng = np.random.default_rng(100 + seed)
    b = np.round((a + rng.normal(size=a.size)) * 2) / 2
    va10, va01 = _brute_force_placements(y, a)
    vb10, vb01 = _brute_force_placements(y, b)
    m, n = len(va10), len(va01)
    var = (
        (_sample_cov(va10, va10) + _sample_cov(vb10, vb10) - 2 * _sample_cov(va10, vb10)) / m
        + (_sample_cov(va01, va01) + _sample_cov(vb01, vb01) - 2 * _sample_cov(va01, vb01)) / n
    )
    diff = va10.mean() - vb10.mean()
    out = delong_test(y, a, b)
    assert out["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert out["auc_b"] == pytest.approx(roc_auc_score(y, b))
    assert out["difference"] == pytest.approx(diff, abs=1e-12)
    assert out["variance"] == pytest.approx(var, rel=1e-10)
    assert out["p_value"] == pytest.approx(2 * norm.sf(abs(diff) / math.sqrt(var)), rel=1e-9)
    swapped = delong_test(y, b, a)
    assert swapped["p_value"] == pytest.approx(out["p_value"])
    assert swapped["difference"] == pytest.approx(-out["difference"])


def test_delong_test_identical_scores_gives_p_one() -> None:
    y, s = _random_case(0, 30, with_ties=False)
    out = delong_test(y, s, s)
    assert out["difference"] == 0.0 and out["p_value"] == 1.0


def test_delong_test_detects_clear_difference() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    good = y + rng.normal(scale=0.3, size=y.size)
    noise = rng.normal(size=y.size)
    assert delong_test(y, good, noise)["p_value"] < 1e-6


def test_mcnemar_matches_statsmodels_exact():
    from statsmodels.stats.contingency_tables import mcnemar

    from blastscope.evaluation.statistics import mcnemar_test

    rng = np.random.default_rng(3)
    a, b = rng.random(80) < 0.8, rng.random(80) < 0.6
    got = mcnemar_test(a, b)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    assert got["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert (got["only_a"], got["only_b"]) == (table[0][1], table[1][0])
    assert mcnemar_test(a, a)["p_value"] == 1.0
    with pytest.raises(ValueError, match="bool"):
        mcnemar_test(a.astype(int), b)
