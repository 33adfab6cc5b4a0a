"""Tests for blastscope.ops.geometry against numpy, scipy, OpenCV's own helpers and scikit-image."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import transform as sk_transform

from blastscope.ops.geometry import (
    affine_matrix,
    equalize_histogram,
    flip,
    gaussian_blur,
    image_center,
    rotation_fit_matrix,
    shear_deg_from_factor,
    to_grayscale3,
    warp,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def real_image() -> np.ndarray:
    """One AML-cytomorphology cell (RGBA TIFF, alpha dropped), reduced to 128 x 128 for speed."""
    files = sorted((DATA / "aml-cytomorphology-sample").glob("*/*.tiff"))
    if not files:
        pytest.skip(f"real images not found under {DATA / 'aml-cytomorphology-sample'}")
    bgra = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    rgb = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)
    return cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_AREA)


def noise_image(height: int = 33, width: int = 33, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def textbook_equalize(gray: np.ndarray) -> np.ndarray:
    """Gonzalez & Woods equalisation with OpenCV's normalisation: (cdf - cdf_min) / (N - cdf_min) * 255."""
    hist = np.bincount(gray.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    cdf_min = cdf[np.nonzero(hist)[0][0]]
    lut = np.zeros(256)
    for v in range(256):
        lut[v] = (cdf[v] - cdf_min) / max(gray.size - cdf_min, 1) * 255.0
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)[gray]


@pytest.mark.parametrize("seed", range(6))
def test_warp_equals_opencv_three_channel_warp(seed: int) -> None:
    """The RGBA route gives exactly OpenCV's 3-channel bilinear warp with a constant border."""
    rng = np.random.default_rng(seed)
    image = noise_image(int(rng.integers(20, 80)), int(rng.integers(20, 80)), seed)
    matrix = affine_matrix(angle_deg=float(rng.uniform(0, 360)), shear_deg_x=float(rng.uniform(-20, 20)),
                           scale=float(rng.uniform(0.7, 1.3)), center=image_center(image.shape))
    border = int(rng.integers(0, 256))
    expected = cv2.warpAffine(image, matrix[:2], (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(border, border, border))
    out = warp(image, matrix, border_value=border)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_multiples_of_90_equals_rot90(k: int) -> None:
    """Invariant: on a square canvas, rotating about the centre by k * 90 degrees is np.rot90(k)."""
    image = noise_image(33, 33)
    result = warp(image, affine_matrix(angle_deg=90.0 * k, center=image_center(image.shape)))
    expected = np.rot90(image, k)
    assert np.abs(result.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize(("angle", "scale", "center"), [(30.0, 1.0, (10.0, 20.0)), (-75.0, 0.7, (0.0, 0.0)), (200.0, 1.3, (15.5, 8.0))])
def test_affine_matrix_rotation_matches_cv2(angle: float, scale: float, center: tuple[float, float]) -> None:
    ours = affine_matrix(angle_deg=angle, scale=scale, center=center)
    np.testing.assert_allclose(ours[:2], cv2.getRotationMatrix2D(center, angle, scale), atol=1e-12)
    np.testing.assert_array_equal(ours[2], [0.0, 0.0, 1.0])


def test_shear_moves_points_by_tangent_times_offset() -> None:
    """A shear along x by s maps (cx + a, cy + b) to (cx + a + tan(s) b, cy + b); along y symmetrically."""
    cx, cy, a, b, s = 7.0, 11.0, 3.0, -5.0, 25.0
    point = np.array([cx + a, cy + b, 1.0])
    np.testing.assert_allclose(
        affine_matrix(shear_deg_x=s, center=(cx, cy)) @ point, [cx + a + math.tan(math.radians(s)) * b, cy + b, 1.0]
    )
    np.testing.assert_allclose(
        affine_matrix(shear_deg_y=s, center=(cx, cy)) @ point, [cx + a, cy + b + math.tan(math.radians(s)) * a, 1.0]
    )
    both = affine_matrix(shear_deg_x=30.0, shear_deg_y=-40.0, center=(cx, cy))
    assert np.linalg.det(both) == pytest.approx(1.0)
    assert shear_deg_from_factor(1.0) == pytest.approx(45.0)


def test_identity_and_integer_translation() -> None:
    image = noise_image(20, 30)
    np.testing.assert_array_equal(warp(image, np.eye(3)), image)
    shifted = warp(image, affine_matrix(translate=(4.0, -3.0), center=(5.0, 5.0)))
    expected = np.zeros_like(image)
    expected[0:17, 4:30] = image[3:20, 0:26]
    np.testing.assert_array_equal(shifted, expected)


def test_rotation_fit_matrix_fits_the_rotated_frame_tightly() -> None:
    """Invariant: the rotated image's outer corners touch the frame, none leaves it."""
    height, width = 40, 60
    matrix = rotation_fit_matrix(33.0, height, width)
    cx, cy = image_center((height, width))
    corners = np.array([[cx + dx, cy + dy, 1.0] for dx in (-width / 2, width / 2) for dy in (-height / 2, height / 2)])
    mapped = corners @ matrix.T
    assert np.abs(mapped[:, 0] - cx).max() == pytest.approx(width / 2)
    assert np.abs(mapped[:, 1] - cy).max() == pytest.approx(height / 2)


def test_rotation_fit_matches_skimage_rotate_resize_on_real_image() -> None:
    image = real_image()
    angle = 40.0
    ours = warp(image, rotation_fit_matrix(angle, *image.shape[:2])).astype(float)
    expanded = sk_transform.rotate(image.astype(float), angle, resize=True, order=1, mode="constant", cval=0.0)
    reference = sk_transform.resize(expanded, image.shape, order=1, anti_aliasing=False)
    assert np.abs(ours - reference).mean() < 4.0  # a wrong angle sign or scale gives tens of levels


@pytest.mark.parametrize("sigma", [0.4, 1.3, 4.0, 8.0])
def test_gaussian_blur_matches_scipy(sigma: float) -> None:
    image = real_image()
    ours = gaussian_blur(image, sigma).astype(float)
    reference = np.stack(
        [ndimage.gaussian_filter(image[:, :, c].astype(float), sigma, mode="reflect", truncate=4.0) for c in range(3)],
        axis=2,
    )
    assert np.abs(ours - reference).max() <= 1.0


def test_gaussian_blur_zero_sigma_is_identity_and_negative_raises() -> None:
    image = noise_image()
    result = gaussian_blur(image, 0.0)
    np.testing.assert_array_equal(result, image)
    assert result is not image
    with pytest.raises(ValueError, match="sigma=-1"):
        gaussian_blur(image, -1.0)


def test_flip_matches_numpy() -> None:
    image = noise_image(7, 9)
    np.testing.assert_array_equal(flip(image, "horizontal"), image[:, ::-1])
    np.testing.assert_array_equal(flip(image, "vertical"), image[::-1])
    with pytest.raises(ValueError, match="diagonal"):
        flip(image, "diagonal")  # type: ignore[arg-type]


def test_to_grayscale3_is_bt601_luminance_in_three_channels() -> None:
    image = real_image()
    result = to_grayscale3(image)
    expected = image.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(result[:, :, 0] - expected).max() <= 1.0
    np.testing.assert_array_equal(result[:, :, 0], result[:, :, 1])
    np.testing.assert_array_equal(result[:, :, 0], result[:, :, 2])


def test_equalize_histogram_on_grey_matches_textbook() -> None:
    gray = to_grayscale3(real_image())
    result = equalize_histogram(gray)
    np.testing.assert_array_equal(result[:, :, 0], textbook_equalize(gray[:, :, 0]))
    np.testing.assert_array_equal(result[:, :, 0], result[:, :, 2])


def test_equalize_histogram_on_colour_equalises_luminance() -> None:
    image = real_image()
    result = equalize_histogram(image)
    y_in = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)[:, :, 0]
    y_out = cv2.cvtColor(result, cv2.COLOR_RGB2YCrCb)[:, :, 0].astype(int)
    error = np.abs(y_out - textbook_equalize(y_in))
    # Saturated colours cannot take every new luminance; elsewhere Y is the equalised Y.
    unclipped = (result > 0).all(axis=2) & (result < 255).all(axis=2)
    assert unclipped.mean() > 0.5
    assert error[unclipped].max() <= 2


def test_non_uint8_input_raises() -> None:
    with pytest.raises(ValueError, match="uint8"):
        gaussian_blur(np.zeros((4, 4, 3), dtype=np.float32), 1.0)
    with pytest.raises(ValueError, match="shear_deg_x"):
        affine_matrix(shear_deg_x=90.0)
