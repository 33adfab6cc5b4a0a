"""``aux: auto``: the SVM's settings by a subject-level grid search, theta by the sweep on selection cells."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from blastscope.estimators.aux_search import choose_theta, search_svm
from blastscope.estimators.theta_rule import theta_sweep


def _features(seed=0, n_subjects=12, per_subject=10):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"S{i}" for i in range(n_subjects)], per_subject)
    y = np.repeat(np.arange(n_subjects) % 2, per_subject)
    X = rng.normal(size=(len(y), 6)) * np.array([50.0, 50, 1, 1, 1, 1])  # two loud noisy features
    X[:, 2] += 1.5 * y  # the signal sits in a quiet feature: standardising should help
    return X, y, groups


def test_search_picks_the_best_cross_validated_setting_by_subject():
    """Reference: every grid point scored independently with scikit-learn's cross_val_score under the
    same subject-level splitter; the search returns the best of them."""
    X, y, groups = _features()
    got = search_svm(X, y, groups, seed=3)
    assert got["grid_size"] == 2 * 4 * 4 and got["n_splits"] == 3
    cv = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=3)
    best = -1.0
    for std in (False, True):
        base = 1.0 / (X.shape[1] * (1.0 if std else X.var()))
        for C in (0.1, 1.0, 10.0, 100.0):
            for gamma in [base * f for f in (0.1, 1.0, 10.0)] + [100.0]:
                model = make_pipeline(*([StandardScaler()] if std else []), SVC(C=C, gamma=gamma))
                best = max(best, cross_val_score(model, X, y, groups=groups, cv=cv, scoring="balanced_accuracy").mean())
    assert got["cv_balanced_accuracy"] == pytest.approx(best)
    assert got["standardize"] is True  # the quiet informative feature needs it


def test_fixed_settings_stay_fixed_and_too_few_subjects_fall_back():
    X, y, groups = _features()
    got = search_svm(X, y, groups, C=10.0, gamma="auto", standardize=False)
    assert got["C"] == 10.0 and got["standardize"] is False and got["grid_size"] == 4
    few = search_svm(X[:20], y[:20], groups[:20])  # one subject per class
    assert few["cv_balanced_accuracy"] is None and (few["C"], few["gamma"], few["standardize"]) == (10.0, 100.0, False)


def test_choose_theta_maximises_weighted_f1_on_the_given_cells_ties_to_the_smaller():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(0.5 + 0.45 * (2 * y - 1) * rng.random(200), 0, 1)
    cnn = np.stack([1 - p1, p1], axis=1)
    svm = np.where(rng.random(200) < 0.9, y, 1 - y)
    got = choose_theta(cnn, svm, y, (0.6, 0.7, 0.8, 0.9))
    rows = theta_sweep(cnn, svm, y, thetas=[0.0, 0.6, 0.7, 0.8, 0.9, 1.0])
    top = max(r["weighted_f1"] for r in rows)
    assert got["weighted_f1"] == pytest.approx(top)
    assert got["theta"] == min(r["theta"] for r in rows if r["weighted_f1"] == pytest.approx(top))
    same = choose_theta(cnn, cnn.argmax(1), y, (0.6, 0.9))  # an SVM that agrees with the CNN: all tie
    assert same["theta"] == 0.0
