import numpy as np
import pytest
from scipy.stats import mode

from blastscope.evaluation.ensemble import majority_vote


@pytest.mark.parametrize("n_models, n_classes", [(7, 2), (7, 3), (4, 3), (6, 2)])
def test_matches_scipy_mode_without_probabilities(n_models: int, n_classes: int) -> None:
    """scipy's mode also returns the smallest of tied values, the documented tie rule."""
    rng = np.random.default_rng(n_models * n_classes)
    pred = rng.integers(0, n_classes, (n_models, 300))
    labels, agreement = majority_vote(pred)
    ref = mode(pred, axis=0, keepdims=False)
    np.testing.assert_array_equal(labels, ref.mode)
    np.testing.assert_allclose(agreement, ref.count / n_models)


def test_agreement_and_vote_by_loop_with_probabilities() -> None:
    """Invariant: no class gets more votes than the winner; agreement = winner's votes / n_models."""
    rng = np.random.default_rng(1)
    n_models, n_samples, k = 4, 200, 3
    pred = rng.integers(0, k, (n_models, n_samples))
    proba = rng.dirichlet(np.ones(k), (n_models, n_samples))
    labels, agreement = majority_vote(pred, proba)
    for i in range(n_samples):
        counts = [int(np.sum(pred[:, i] == c)) for c in range(k)]
        assert counts[labels[i]] == max(counts)
        tied = [c for c in range(k) if counts[c] == max(counts)]
        mean = proba[:, i].mean(axis=0)
        assert labels[i] == max(tied, key=lambda c: (mean[c], -c))
        assert agreement[i] == counts[labels[i]] / n_models


def test_tie_broken_by_mean_probability_else_smallest_index() -> None:
    pred = np.array([[0, 1], [1, 0]])  # both samples tied 1:1
    proba = np.array([[[0.6, 0.4], [0.3, 0.7]], [[0.1, 0.9], [0.5, 0.5]]])  # means: [.35,.65], [.4,.6]
    labels, agreement = majority_vote(pred, proba)
    np.testing.assert_array_equal(labels, [1, 1])
    np.testing.assert_array_equal(agreement, [0.5, 0.5])
    np.testing.assert_array_equal(majority_vote(pred)[0], [0, 0])
    even = np.full((2, 2, 2), 0.5)
    np.testing.assert_array_equal(majority_vote(pred, even)[0], [0, 0])


def test_unanimous_vote_has_full_agreement() -> None:
    pred = np.tile(np.array([2, 0, 1]), (5, 1))
    labels, agreement = majority_vote(pred)
    np.testing.assert_array_equal(labels, [2, 0, 1])
    np.testing.assert_array_equal(agreement, 1.0)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="n_models, n_samples"):
        majority_vote(np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="integer"):
        majority_vote(np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=">= 0"):
        majority_vote(np.array([[0, -1]]))
    with pytest.raises(ValueError, match="probabilities must have shape"):
        majority_vote(np.array([[0, 1]]), np.ones((2, 2, 2)) / 2)
    with pytest.raises(ValueError, match="n_classes=2"):
        majority_vote(np.array([[0, 2]]), np.ones((1, 2, 2)) / 2)
