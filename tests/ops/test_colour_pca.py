"""Tests for blastscope.ops.colour_pca against numpy.linalg.eigh and scikit-learn's PCA."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from blastscope.ops.colour_pca import add_colour_shift, colour_shift, covariance_eigen, rgb_covariance_eigen


def correlated_pixels(n: int = 5000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.array([[0.20, 0.05, 0.00], [0.15, 0.10, 0.02], [0.10, 0.02, 0.06]])
    return np.clip(0.5 + rng.normal(size=(n, 3)) @ mixing.T, 0.0, 1.0)


def assert_same_up_to_sign(a: np.ndarray, b: np.ndarray) -> None:
    for i in range(a.shape[1]):
        sign = np.sign(a[:, i] @ b[:, i])
        np.testing.assert_allclose(a[:, i], sign * b[:, i], atol=1e-9)


def test_rgb_covariance_eigen_matches_numpy_eigh() -> None:
    pixels = correlated_pixels()
    values, vectors = rgb_covariance_eigen(pixels)
    ref_values, ref_vectors = np.linalg.eigh(np.cov(pixels.T))
    np.testing.assert_allclose(values, ref_values[::-1], rtol=1e-10)
    assert_same_up_to_sign(vectors, ref_vectors[:, ::-1])
    assert np.all(np.diff(values) <= 0)


def test_rgb_covariance_eigen_matches_sklearn_pca() -> None:
    pixels = correlated_pixels(seed=1)
    values, vectors = rgb_covariance_eigen(pixels)
    pca = PCA(n_components=3).fit(pixels)
    np.testing.assert_allclose(values, pca.explained_variance_, rtol=1e-8)
    assert_same_up_to_sign(vectors, pca.components_.T)


def test_eigenvectors_orthonormal_with_positive_dominant_component() -> None:
    """Invariant: columns are orthonormal and each one's largest-magnitude entry is positive."""
    _, vectors = rgb_covariance_eigen(correlated_pixels(seed=2))
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=1e-12)
    for i in range(3):
        assert vectors[np.argmax(np.abs(vectors[:, i])), i] > 0


def test_colour_shift_is_the_weighted_sum_of_eigenvectors() -> None:
    values = np.array([0.3, 0.02, 0.001])
    vectors = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    alpha = np.array([0.5, -1.0, 2.0])
    expected = sum(alpha[i] * values[i] * vectors[:, i] for i in range(3))
    np.testing.assert_allclose(colour_shift(values, vectors, alpha), expected)


def test_colour_shift_mean_is_zero_over_many_alphas() -> None:
    """Invariant: with alpha ~ N(0, 0.1) the added colour has expectation zero (checked to 5 standard errors)."""
    values, vectors = rgb_covariance_eigen(correlated_pixels(seed=4))
    alphas = np.random.default_rng(5).normal(0.0, 0.1, size=(20000, 3))
    shifts = np.stack([colour_shift(values, vectors, a) for a in alphas])
    standard_error = shifts.std(axis=0) / np.sqrt(len(shifts))
    assert np.all(np.abs(shifts.mean(axis=0)) < 5 * standard_error)


def test_add_colour_shift_zero_alpha_is_identity_and_output_is_clipped() -> None:
    image = np.random.default_rng(6).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    values, vectors = np.array([0.2, 0.01, 0.001]), np.eye(3)
    np.testing.assert_array_equal(add_colour_shift(image, values, vectors, np.zeros(3)), image)
    bright = add_colour_shift(image, values, vectors, np.array([2000.0, 0.0, 0.0]))
    assert bright.dtype == np.uint8
    np.testing.assert_array_equal(bright[:, :, 0], 255)
    np.testing.assert_array_equal(bright[:, :, 1:], image[:, :, 1:])


def test_known_shift_in_grey_levels() -> None:
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    shifted = add_colour_shift(image, np.array([50.0, 0.0, 0.0]), np.eye(3), np.array([0.2, 0.0, 0.0]))
    np.testing.assert_array_equal(shifted[0, 0], [110, 100, 100])  # 0.2 * 50 grey levels


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="N x 3"):
        rgb_covariance_eigen(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="3 x 3"):
        covariance_eigen(np.eye(2))
