"""Out-of-domain checks: Mahalanobis distance against SciPy, thresholds, arrays, stain range."""
from __future__ import annotations

import numpy as np
import pytest

from blastscope.estimators.ood import MahalanobisOOD, StainRange, stain_angles


def _gaussians(rng, n=200, p=6):
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, p)) + np.where(y[:, None] == 1, 3.0, 0.0)
    return X, y


def test_score_is_the_smallest_mahalanobis_distance_scipy():
    from scipy.spatial.distance import mahalanobis

    rng = np.random.default_rng(0)
    X, y = _gaussians(rng)
    ood = MahalanobisOOD().fit(X, y)
    test = rng.normal(1, 2, (20, X.shape[1]))
    z = (test - ood.mean_) / ood.scale_
    expected = [min(mahalanobis(row, c, ood.precision_) ** 2 for c in ood.centres_) for row in z]
    np.testing.assert_allclose(ood.score(test), expected, rtol=1e-9)


def test_threshold_flags_the_stated_share_of_in_domain_cells_and_far_cells():
    rng = np.random.default_rng(1)
    X, y = _gaussians(rng, n=400)
    ood = MahalanobisOOD(quantile=0.9).fit(X[:200], y[:200])
    ood.set_threshold(X[200:])
    _, flagged = ood.flag(X[200:])
    assert flagged.mean() == pytest.approx(0.1, abs=0.01)
    far = rng.normal(12, 1, (50, X.shape[1]))
    assert ood.flag(far)[1].all()


def test_arrays_round_trip_and_bad_shapes_are_refused():
    rng = np.random.default_rng(2)
    X, y = _gaussians(rng)
    ood = MahalanobisOOD().fit(X, y)
    ood.set_threshold(X)
    again = MahalanobisOOD.from_arrays(ood.to_arrays())
    np.testing.assert_allclose(again.score(X), ood.score(X))
    assert again.threshold_ == ood.threshold_
    bad = ood.to_arrays()
    bad["precision"] = bad["precision"][:3, :3]
    with pytest.raises(ValueError, match="disagree in shape"):
        MahalanobisOOD.from_arrays(bad)
    with pytest.raises(ValueError, match="set_threshold"):
        MahalanobisOOD().fit(X, y).flag(X)


def _stained(rng, stains: np.ndarray, n=4, size=48) -> list[np.ndarray]:
    """Images whose pixels are mixtures of two stain OD vectors (Beer-Lambert)."""
    out = []
    for _ in range(n):
        conc = rng.uniform(0, 1.2, (size * size, 2))
        od = conc @ stains[:2]
        out.append(np.clip(255 * 10 ** (-od), 0, 255).astype(np.uint8).reshape(size, size, 3))
    return out


def test_stain_range_warns_on_another_stain_only():
    rng = np.random.default_rng(3)
    he = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0, 0, 0]], float)
    he[:2] /= np.linalg.norm(he[:2], axis=1, keepdims=True)
    subjects = [_stained(rng, he) for _ in range(5)]
    rng_range = StainRange().fit(subjects)
    assert rng_range.check(_stained(rng, he))["outside"] is False
    other = np.array([[0.27, 0.57, 0.78], [0.72, 0.12, 0.68], [0, 0, 0]], float)
    other[:2] /= np.linalg.norm(other[:2], axis=1, keepdims=True)
    result = rng_range.check(_stained(rng, other))
    assert result["outside"] is True and max(result["angles"]) > 10
    again = StainRange.from_arrays(rng_range.to_arrays())
    assert again.check(_stained(rng, other))["outside"] is True
    assert stain_angles(he, he).max() < 1e-6
