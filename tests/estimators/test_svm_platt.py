"""The auxiliary SVM's own probability: a one-slope Platt scaling fitted on cells it was not trained on."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from blastscope.estimators.svm_head import SpectralSVM, platt_targets


def _data(k: int, n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = (X[:, 0] > 0).astype(int) if k == 2 else np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    y = np.where(rng.random(n) < 0.1, rng.integers(0, k, n), y)  # label noise: the SVM is not perfect
    return X, y


def test_binary_slope_matches_an_independent_logistic_regression():
    """Reference: Platt's smoothed-target likelihood without intercept is a weighted logistic regression
    on the decision value (each cell twice, weights t and 1 - t), solved here by scikit-learn's lbfgs."""
    X, y = _data(2)
    svm = SpectralSVM(C=1.0, gamma=0.2).fit(X[:150], y[:150]).calibrate(X[150:], y[150:])
    f = svm.decision_function(X[150:])
    t = platt_targets(y[150:], 2)[:, 1]
    lr = LogisticRegression(fit_intercept=False, C=1e10, tol=1e-12, max_iter=10_000)
    lr.fit(np.concatenate([f, f])[:, None], np.r_[np.ones_like(f), np.zeros_like(f)], sample_weight=np.r_[t, 1 - t])
    assert svm.platt_a_ == pytest.approx(float(lr.coef_[0, 0]), rel=1e-4)
    p = svm.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-svm.platt_a_ * svm.decision_function(X))))


def test_platt_targets_are_platts_for_two_classes():
    t = platt_targets(np.array([1, 1, 1, 0]), 2)
    np.testing.assert_allclose(t[:, 1], [4 / 5, 4 / 5, 4 / 5, 1 / 3])
    np.testing.assert_allclose(t.sum(axis=1), 1.0)


@pytest.mark.parametrize("k", [2, 3])
def test_probability_agrees_with_the_label_and_survives_the_array_round_trip(k):
    """Invariant: argmax(predict_proba) == predict on every cell (the probability is the label's own),
    also after to_arrays/from_arrays (pure NumPy), where it is the same number."""
    X, y = _data(k)
    svm = SpectralSVM(C=1.0, gamma=0.2).fit(X[:150], y[:150]).calibrate(X[150:], y[150:])
    p = svm.predict_proba(X)
    assert p.shape == (len(X), k) and np.allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == svm.predict(X)).all()
    labels, both = svm.predict_and_proba(X)
    assert (labels == svm.predict(X)).all() and np.array_equal(both, p)
    again = SpectralSVM.from_arrays(svm.to_arrays())
    assert again.platt_a_ == svm.platt_a_
    np.testing.assert_allclose(again.predict_proba(X), p, atol=1e-9)
    assert (again.predict(X) == svm.predict(X)).all()


def test_a_better_svm_gets_a_steeper_slope():
    """The fit reads the calibration cells: labels that agree with the SVM make it confident, random
    labels make its probabilities close to 0.5."""
    X, y = _data(2)
    svm = SpectralSVM(C=1.0, gamma=0.2).fit(X[:150], y[:150])
    confident = svm.calibrate(X[150:], svm.predict(X[150:])).platt_a_
    rng = np.random.default_rng(1)
    random = svm.calibrate(X[150:], rng.integers(0, 2, 150)).platt_a_
    assert confident > 10 * random


def test_no_probability_before_calibration_and_clear_errors():
    X, y = _data(2)
    svm = SpectralSVM(C=1.0, gamma=0.2).fit(X, y)
    with pytest.raises(ValueError, match="calibrate"):
        svm.predict_proba(X)
    with pytest.raises(ValueError, match="not among the SVM's classes"):
        svm.calibrate(X[:5], np.array([0, 1, 7, 0, 1]))
    with pytest.raises(ValueError, match="at least one cell"):
        svm.calibrate(X[:0], y[:0])
    arrays = svm.calibrate(X, y).to_arrays()
    arrays["platt_a"] = np.array(-1.0)
    with pytest.raises(ValueError, match="platt_a"):
        SpectralSVM.from_arrays(arrays)
