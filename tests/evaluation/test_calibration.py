"""Calibration metrics against independent computations (brute force, torchmetrics, scikit-learn)."""
from __future__ import annotations

import numpy as np
import pytest

from blastscope.evaluation.calibration import (
    apply_temperature,
    brier_score,
    ece,
    ece_interval,
    fit_temperature,
    nll,
    reliability_curve,
)


def _data(n=400, k=3, seed=0, temperature=2.0):
    """Probabilities ``softmax(z)`` whose labels were drawn from ``softmax(z / temperature)``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, (n, k))
    true = np.exp(z / temperature)
    true /= true.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in true])
    p = np.exp(z)
    return p / p.sum(1, keepdims=True), y


def _brute_ece_mass(proba, y, n_bins):
    """Equal-mass top-label ECE written out: sort by confidence, cut into n_bins runs of (almost) equal size."""
    conf = proba.max(1)
    correct = proba.argmax(1) == y
    order = np.argsort(conf, kind="stable")
    n = len(y)
    total = 0.0
    for b in range(n_bins):
        members = [order[i] for i in range(n) if i * n_bins // n == b]
        if members:
            total += len(members) * abs(np.mean(correct[members]) - np.mean(conf[members]))
    return total / n


def test_ece_equal_mass_matches_brute_force():
    proba, y = _data()
    for bins in (1, 5, 10, 15):
        assert ece(proba, y, bins, "mass") == pytest.approx(_brute_ece_mass(proba, y, bins), abs=1e-12)


def test_ece_equal_width_matches_torchmetrics():
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification")
    for k, seed in ((2, 1), (3, 2), (4, 3)):
        proba, y = _data(k=k, seed=seed)
        metric = tm.MulticlassCalibrationError(num_classes=k, n_bins=10, norm="l1")
        expected = float(metric(torch.from_numpy(proba), torch.from_numpy(y)))
        assert ece(proba, y, 10, "width") == pytest.approx(expected, abs=1e-6)


def test_a_calibrated_model_has_small_ece_and_an_overconfident_one_large():
    rng = np.random.default_rng(5)
    conf = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(size=conf.size) < conf  # right exactly as often as it says
    proba = np.stack([conf, 1 - conf], 1)
    y = np.where(correct, 0, 1)
    assert ece(proba, y, 10) < 0.01
    sharp = apply_temperature(proba, 0.3)  # the same labels, overconfident
    assert ece(sharp, y, 10) > 0.08


def test_temperature_recovers_the_generating_temperature_and_keeps_labels():
    proba, y = _data(n=4000, k=3, seed=7, temperature=2.0)
    t = fit_temperature(proba, y)
    assert t == pytest.approx(2.0, rel=0.12)
    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 2001))
    best = grid[np.argmin([nll(apply_temperature(proba, g), y) for g in grid])]  # independent grid search
    assert t == pytest.approx(best, rel=0.01)
    scaled = apply_temperature(proba, t)
    assert (scaled.argmax(1) == proba.argmax(1)).all()
    assert nll(scaled, y) < nll(proba, y)
    np.testing.assert_allclose(apply_temperature(proba, 1.0), proba, atol=1e-12)


def test_temperature_is_not_estimated_without_errors():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert fit_temperature(proba, np.array([0, 1, 0])) == 1.0
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0)) == 1.0
    with pytest.raises(ValueError, match="temperature must be"):
        apply_temperature(proba, 0.0)


def test_brier_and_nll_match_scikit_learn():
    from sklearn.metrics import brier_score_loss, log_loss

    proba, y = _data(k=2, seed=3)
    assert brier_score(proba, y) == pytest.approx(2 * brier_score_loss(y, proba[:, 1]))  # sum over both classes
    assert nll(proba, y) == pytest.approx(log_loss(y, proba, labels=[0, 1]))
    proba3, y3 = _data(k=3, seed=4)
    onehot = np.eye(3)[y3]
    assert brier_score(proba3, y3) == pytest.approx(np.mean(np.sum((proba3 - onehot) ** 2, 1)))
    assert nll(proba3, y3) == pytest.approx(log_loss(y3, proba3, labels=[0, 1, 2]))


def test_ece_interval_resamples_subjects_not_cells():
    proba, y = _data(n=300, seed=9)
    one_subject = np.zeros(300, int)
    assert np.isnan(ece_interval(proba, y, one_subject)).all()  # nothing to resample
    # Ten subjects: resampling whole subjects gives a wider interval than 300 independent cells.
    subjects = np.repeat(np.arange(10), 30)
    order = np.argsort(proba.max(1))  # subjects differ in confidence: cells of one subject are alike
    grouped = np.empty(300, int)
    grouped[order] = subjects
    lo_s, hi_s = ece_interval(proba, y, grouped, n_boot=300)
    lo_c, hi_c = ece_interval(proba, y, np.arange(300), n_boot=300)
    assert lo_s <= ece(proba, y) <= hi_s
    assert hi_s - lo_s > hi_c - lo_c


def test_reliability_curve_counts_every_cell():
    proba, y = _data(n=103)
    curve = reliability_curve(proba, y, 10)
    assert sum(b["cells"] for b in curve) == 103
    assert all(0 <= b["accuracy"] <= 1 and 0 <= b["confidence"] <= 1 for b in curve)
    weighted = sum(b["cells"] * abs(b["accuracy"] - b["confidence"]) for b in curve) / 103
    assert weighted == pytest.approx(ece(proba, y, 10))
