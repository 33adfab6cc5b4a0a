"""theta = 0 and theta = 1 with saturated float32 CNN outputs, as the cross-validation feeds them
(``np.exp`` of float32 ``log_softmax``): tau is exactly 1.0 or exactly 0.5 there."""
from __future__ import annotations

import numpy as np
import torch

from blastscope.estimators.theta_rule import theta_combine


def _proba(logits: list[list[float]]) -> np.ndarray:
    return np.exp(torch.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=1).numpy())


LOGITS = [[1e4, -1e4], [-100.0, 100.0], [3.0, 3.0], [0.0, 0.0], [-1e30, 1e30]]


def test_saturated_probabilities_are_valid_input():
    proba = _proba(LOGITS)
    assert np.isfinite(proba).all() and proba.max() == 1.0 and (proba[2:4] == 0.5).all()


def test_theta_zero_keeps_every_cnn_label_even_at_a_tie():
    proba = _proba(LOGITS)
    pred, source = theta_combine(proba, np.array([1, 0, 1, 1, 0]), 0.0)
    np.testing.assert_array_equal(pred, [0, 1, 0, 0, 1])  # ties resolve to class 0 (eq. 2)
    assert set(source) == {"cnn"}


def test_theta_one_hands_even_certain_cells_to_the_svm():
    """tau = 1.0 exactly is not > theta = 1, so the SVM answers every cell (SDCT-AuxNet1)."""
    aux = np.array([1, 0, 1, 1, 0])
    pred, source = theta_combine(_proba(LOGITS), aux, 1.0)
    np.testing.assert_array_equal(pred, aux)
    assert set(source) == {"svm"}
