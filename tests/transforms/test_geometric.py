"""Tests for blastscope.transforms.geometric: drawn parameters, fixed centre, flips, fused warps."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from blastscope.ops.geometry import image_center, rotation_fit_matrix, warp
from blastscope.transforms.geometric import (
    FusedAffine,
    RandomFlip,
    RandomRotation,
    RandomShear,
    RandomTranslate,
    RandomZoom,
)

SHAPE = (40, 60, 3)


def smooth_image(height: int = 40, width: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    channels = [128 + 100 * np.sin(x / 7.0), 128 + 100 * np.cos(y / 5.0), 128 + 60 * np.sin((x + y) / 9.0)]
    return np.stack(channels, axis=2).round().astype(np.uint8)


def draw_matrices(transform, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [transform.sample_matrix(SHAPE, rng) for _ in range(n)]


def test_flip_exact_both_paths() -> None:
    image = smooth_image()
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(RandomFlip("horizontal", p=1.0)(image, rng), image[:, ::-1])
    np.testing.assert_array_equal(RandomFlip("vertical", p=1.0)(image, rng), image[::-1])
    np.testing.assert_array_equal(FusedAffine([RandomFlip("horizontal", p=1.0)])(image, rng), image[:, ::-1])
    np.testing.assert_array_equal(FusedAffine([RandomFlip("vertical", p=1.0)])(image, rng), image[::-1])


def test_flip_frequency_is_binomial() -> None:
    image = smooth_image()
    flip = RandomFlip("horizontal", p=0.5)
    rng = np.random.default_rng(1)
    n = 2000
    flipped = sum(not np.array_equal(flip(image, rng), image) for _ in range(n))
    assert abs(flipped - n / 2) < 4.5 * np.sqrt(n / 4)


def test_rotation_angles_are_uniform_in_range() -> None:
    angles = [math.degrees(math.atan2(m[0, 1], m[0, 0])) for m in draw_matrices(RandomRotation((-30.0, 30.0)), 2000)]
    assert min(angles) >= -30.0 and max(angles) <= 30.0
    assert stats.kstest(angles, stats.uniform(loc=-30.0, scale=60.0).cdf).pvalue > 1e-3


def test_fit_rotation_uses_the_fit_matrix() -> None:
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    matrix = RandomRotation((10.0, 80.0), fit=True).sample_matrix(SHAPE, rng_a)
    np.testing.assert_allclose(matrix, rotation_fit_matrix(rng_b.uniform(10.0, 80.0), SHAPE[0], SHAPE[1]))


@pytest.mark.parametrize(
    "transform",
    [RandomRotation((0.0, 360.0)), RandomShear(x_deg=(-20.0, 20.0), y_deg=(5.0, 9.0)), RandomZoom((0.5, 2.0))],
)
def test_centre_is_fixed(transform) -> None:
    """Invariant: rotation, shear and zoom act about the image centre, which does not move."""
    centre = np.array([*image_center(SHAPE), 1.0])
    for matrix in draw_matrices(transform, 50):
        np.testing.assert_allclose(matrix @ centre, centre, atol=1e-9)


def test_shear_factor_in_range_and_signs() -> None:
    low, high = 16.7, 45.0
    factors = [m[0, 1] for m in draw_matrices(RandomShear(x_deg=(low, high)), 500)]
    tan_low, tan_high = math.tan(math.radians(low)), math.tan(math.radians(high))
    assert all(tan_low - 1e-12 <= f <= tan_high + 1e-12 for f in factors)
    signed = [m[1, 0] for m in draw_matrices(RandomShear(y_deg=(low, high), random_sign=True), 500)]
    assert all(tan_low - 1e-12 <= abs(f) <= tan_high + 1e-12 for f in signed)
    assert 150 < sum(f < 0 for f in signed) < 350


def test_translation_in_pixels_and_fractions() -> None:
    pixels = np.array([m[:2, 2] for m in draw_matrices(RandomTranslate((25.0, 50.0), (25.0, 50.0)), 500)])
    assert pixels.min() >= 25.0 and pixels.max() <= 50.0
    signed = np.array([m[:2, 2] for m in draw_matrices(RandomTranslate((25.0, 50.0), (25.0, 50.0), random_sign=True), 500)])
    assert np.abs(signed).min() >= 25.0 and (signed < 0).any() and (signed > 0).any()
    relative = np.array([m[:2, 2] for m in draw_matrices(RandomTranslate((-0.1, 0.1), (-0.1, 0.1), relative=True), 500)])
    assert np.abs(relative[:, 0]).max() <= 0.1 * SHAPE[1] and np.abs(relative[:, 0]).max() > 0.09 * SHAPE[1]
    assert np.abs(relative[:, 1]).max() <= 0.1 * SHAPE[0] and np.abs(relative[:, 1]).max() > 0.09 * SHAPE[0]


def test_integer_translation_moves_content() -> None:
    image = smooth_image()
    rng = np.random.default_rng(0)
    moved = RandomTranslate((5.0, 5.0), (3.0, 3.0))(image, rng)
    np.testing.assert_array_equal(moved[3:, 5:], image[:-3, :-5])
    assert moved[:3].max() == 0 and moved[:, :5].max() == 0


def test_zoom_is_isotropic_in_range() -> None:
    for matrix in draw_matrices(RandomZoom((0.8, 1.2)), 300):
        assert 0.8 <= matrix[0, 0] <= 1.2
        assert matrix[0, 0] == pytest.approx(matrix[1, 1]) and matrix[0, 1] == 0.0


def test_fused_matrix_is_product_and_matches_sequential_warps() -> None:
    parts = [RandomRotation((-10.0, 10.0)), RandomZoom((0.9, 1.1)), RandomTranslate((-2.0, 2.0), (-2.0, 2.0))]
    fused = FusedAffine(parts)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    matrix = fused.sample_matrix(SHAPE, rng_a)
    expected = np.eye(3)
    for part in parts:
        expected = part.sample_matrix(SHAPE, rng_b) @ expected
    np.testing.assert_allclose(matrix, expected)

    image = smooth_image()
    once = warp(image, matrix).astype(float)
    rng_c = np.random.default_rng(9)
    sequential = image
    for part in parts:
        sequential = warp(sequential, part.sample_matrix(SHAPE, rng_c))
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(once[inner] - sequential[inner].astype(float)).mean() < 2.0


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="x_deg=None y_deg=None"):
        RandomShear()
    with pytest.raises(ValueError, match=r"degrees=\(10.0, 5.0\)"):
        RandomRotation((10.0, 5.0))
    with pytest.raises(ValueError, match="direction='diagonal'"):
        RandomFlip("diagonal")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RandomAffineTransform"):
        FusedAffine([lambda image, rng: image])  # type: ignore[list-item]
