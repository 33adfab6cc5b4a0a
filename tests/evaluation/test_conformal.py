"""Mondrian split-conformal sets against the p-value definition, and their coverage guarantee."""
from __future__ import annotations

import math

import numpy as np
import pytest

from blastscope.evaluation.conformal import class_scores, coverage_report, mondrian_thresholds, prediction_sets, set_flags
from blastscope.evaluation.statistics import wilson_interval


def _proba(rng, n, k=3):
    z = rng.normal(0, 1.5, (n, k))
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def _sets_by_p_values(cal_p, cal_y, test_p, alpha):
    """Vovk's Mondrian conformal predictor written from its definition: class c is in the set when
    its conformal p-value (1 + #{calibration cells of class c scoring at least as high}) / (n_c + 1)
    exceeds alpha."""
    k = cal_p.shape[1]
    out = np.zeros(test_p.shape, bool)
    for c in range(k):
        s_cal = 1 - cal_p[cal_y == c, c]
        for i, p in enumerate(test_p):
            s = 1 - p[c]
            out[i, c] = (1 + np.sum(s_cal >= s)) / (len(s_cal) + 1) > alpha
    return out


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.3])
def test_sets_match_the_p_value_definition(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    cal_p, test_p = _proba(rng, 300), _proba(rng, 200)
    cal_y = np.array([rng.choice(3, p=p) for p in cal_p])
    q = mondrian_thresholds(class_scores(cal_p, cal_y, 3), alpha)
    np.testing.assert_array_equal(prediction_sets(test_p, q), _sets_by_p_values(cal_p, cal_y, test_p, alpha))


def test_coverage_per_class_is_at_least_one_minus_alpha_on_exchangeable_cells():
    rng = np.random.default_rng(0)
    alpha, n_cal, reps = 0.1, 60, 300
    covered = {0: [], 1: []}
    for _ in range(reps):
        p = _proba(rng, 2 * n_cal + 200, 2)
        y = np.array([rng.choice(2, p=row) for row in p])
        cal, test = slice(0, 2 * n_cal), slice(2 * n_cal, None)
        sets = prediction_sets(p[test], mondrian_thresholds(class_scores(p[cal], y[cal], 2), alpha))
        for c in (0, 1):
            m = y[test] == c
            covered[c].append(sets[m, c].mean())
    for c in (0, 1):
        assert np.mean(covered[c]) >= 1 - alpha - 0.01  # the guarantee, up to simulation noise
        assert np.mean(covered[c]) <= 1 - alpha + 0.05  # and not trivially everything


def test_too_few_calibration_cells_give_an_infinite_threshold():
    scores = [np.linspace(0, 1, 18), np.linspace(0, 1, 19)]
    q = mondrian_thresholds(scores, 0.05)
    assert math.isinf(q[0])  # ceil(19 * 0.95) = 19 > 18 cells: the class is always in the set
    assert q[1] == scores[1][-1]  # ceil(20 * 0.95) = 19: the largest score
    assert prediction_sets(np.array([[0.0, 1.0]]), q)[0, 0]
    with pytest.raises(ValueError, match="alpha must be in"):
        mondrian_thresholds(scores, 0.0)


def test_flags_and_report():
    sets = np.array([[True, False], [True, True], [False, False], [False, True], [False, True]])
    y = np.array([0, 1, 0, 1, 0])
    assert set_flags(sets).tolist() == ["", "ambiguous", "empty", "", ""]
    r = coverage_report(sets, y, ["hem", "all"])
    assert r["coverage"]["hem"]["covered"] == 1 and r["coverage"]["hem"]["cells"] == 3
    assert r["coverage"]["hem"]["ci"] == list(wilson_interval(1, 3))
    assert r["coverage"]["all"]["coverage"] == 1.0
    assert r["review_rate"] == pytest.approx(0.4) and r["ambiguous"] == 1 and r["empty"] == 1
    assert r["not_flagged"] == 3 and r["error_not_flagged"] == pytest.approx(1 / 3)  # the last cell: {all} but hem
    pred = np.array([0, 0, 0, 1, 0])  # the model answered hem for the last cell, its set says all
    assert set_flags(sets, pred).tolist() == ["", "ambiguous", "empty", "", "disagrees"]
    r = coverage_report(sets, y, ["hem", "all"], pred)
    assert r["disagrees"] == 1 and r["not_flagged"] == 2 and r["error_not_flagged"] == 0.0
    assert r["review_rate"] == pytest.approx(0.6)
