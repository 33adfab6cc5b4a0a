"""The NumPy-only stored SVM gives SpectralSVM's labels, decision values and probabilities."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from blastscope.estimators.svm_arrays import SVMArrays
from blastscope.estimators.svm_head import SpectralSVM


@pytest.mark.parametrize("k", [2, 3])
def test_same_answers_as_spectral_svm(k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(40 * k, 6)) + np.repeat(np.arange(k), 40)[:, None] * 0.8
    y = np.repeat(np.arange(k), 40)
    svm = SpectralSVM(C=1.0, gamma=0.3, standardize=True).fit(X, y).calibrate(X[::2], y[::2])
    stored = SVMArrays.from_arrays(svm.to_arrays())
    test = rng.normal(size=(50, 6)) + 0.5
    np.testing.assert_array_equal(stored.predict(test), svm.predict(test))
    np.testing.assert_allclose(stored.decision_function(test), svm.decision_function(test), atol=1e-9)
    np.testing.assert_allclose(stored.predict_proba(test), svm.predict_proba(test), atol=1e-12)
    labels, proba = stored.predict_and_proba(test)
    np.testing.assert_array_equal(labels, svm.predict(test))
    assert stored.n_features_in_ == 6 and stored.platt_a_ == svm.platt_a_
    bad = svm.to_arrays()
    bad["n_support"] = bad["n_support"] + 1
    with pytest.raises(ValueError, match="does not add up"):
        SVMArrays.from_arrays(bad)


def test_prediction_does_not_import_scikit_learn():
    code = ("import sys; import blastscope.inference.predictor, blastscope.inference.bundle; "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
