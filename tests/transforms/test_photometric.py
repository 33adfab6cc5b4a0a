"""Tests for blastscope.transforms.photometric: drawn sigma, grey conversion, equalisation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from blastscope.transforms.photometric import Grayscale, HistogramEqualization, RandomGaussianBlur


def image() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:48]
    base = np.where((x - 24) ** 2 + (y - 24) ** 2 < 100, 220, 30)
    noise = np.random.default_rng(0).integers(-20, 20, (48, 48, 3))
    return np.clip(base[:, :, None] + noise, 0, 255).astype(np.uint8)


def test_random_blur_uses_a_sigma_drawn_in_range() -> None:
    img = image()
    seed = 4
    out = RandomGaussianBlur((2.0, 3.0))(img, np.random.default_rng(seed))
    sigma = np.random.default_rng(seed).uniform(2.0, 3.0)
    reference = np.stack([ndimage.gaussian_filter(img[:, :, c].astype(float), sigma) for c in range(3)], axis=2)
    assert np.abs(out - reference).max() <= 1.0


def test_zero_sigma_range_is_identity() -> None:
    img = image()
    np.testing.assert_array_equal(RandomGaussianBlur((0.0, 0.0))(img, np.random.default_rng(0)), img)


def test_grayscale_and_equalization_are_deterministic_and_grey_stays_grey() -> None:
    img = image()
    gray = Grayscale()(img, np.random.default_rng(0))
    np.testing.assert_array_equal(gray, Grayscale()(img, np.random.default_rng(1)))
    equalized = HistogramEqualization()(gray, np.random.default_rng(0))
    np.testing.assert_array_equal(equalized[:, :, 0], equalized[:, :, 1])
    assert equalized.min() == 0 and equalized.max() == 255


def test_negative_sigma_raises() -> None:
    with pytest.raises(ValueError, match="sigma"):
        RandomGaussianBlur((-1.0, 2.0))
