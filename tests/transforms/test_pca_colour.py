"""Tests for the dataset-level PCA colour augmentation (AlexNet's method via LeukemiaNet section 3.1.2)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from blastscope.transforms.pca_colour import PCAColourAugment

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def real_images(count: int = 6) -> list[np.ndarray]:
    files = sorted((DATA / "pbc-sample").glob("*/*.jpg"))[:count]
    if not files:
        pytest.skip(f"PBC sample images not found under {DATA / 'pbc-sample'}")
    return [cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)[::3, ::3] for f in files]


def cells_on_black(count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Synthetic colourful cells on a pure-black background, of differing sizes."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        size = 30 + 7 * i
        image = np.zeros((size, size, 3), dtype=np.uint8)
        y, x = np.mgrid[0:size, 0:size]
        inside = (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2
        colours = rng.normal([150, 80, 170], [40, 25, 30], size=(int(inside.sum()), 3))
        image[inside] = np.clip(colours, 1, 255).astype(np.uint8)
        images.append(image)
    return images


def assert_same_up_to_sign(a: np.ndarray, b: np.ndarray) -> None:
    for i in range(3):
        sign = np.sign(a[:, i] @ b[:, i])
        np.testing.assert_allclose(a[:, i], sign * b[:, i], atol=1e-8)


def reference_eigen(images: list[np.ndarray], ignore_black: bool) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(float)
    if ignore_black:
        pixels = pixels[(pixels > 0).any(axis=1)]
    values, vectors = np.linalg.eigh(np.cov(pixels.T))
    return values[::-1], vectors[:, ::-1]


@pytest.mark.parametrize("ignore_black", [True, False])
def test_fit_matches_eigh_of_all_training_pixels(ignore_black: bool) -> None:
    images = cells_on_black()
    augment = PCAColourAugment(ignore_black=ignore_black).fit(iter(images))
    values, vectors = reference_eigen(images, ignore_black)
    np.testing.assert_allclose(augment.eigenvalues_, values, rtol=1e-9)
    assert_same_up_to_sign(augment.eigenvectors_, vectors)


def test_fit_on_real_images_matches_eigh() -> None:
    images = real_images()
    augment = PCAColourAugment().fit(images)
    values, vectors = reference_eigen(images, ignore_black=True)
    np.testing.assert_allclose(augment.eigenvalues_, values, rtol=1e-9)
    assert_same_up_to_sign(augment.eigenvectors_, vectors)
    assert augment.n_pixels_ == sum((im > 0).any(axis=2).sum() for im in images)


def test_black_background_is_left_out_of_the_fit() -> None:
    """Invariant: with ignore_black, padding the images with black borders does not change the fit."""
    images = cells_on_black()
    padded = [cv2.copyMakeBorder(im, 10, 10, 10, 10, cv2.BORDER_CONSTANT, value=0) for im in images]
    plain = PCAColourAugment().fit(images)
    bordered = PCAColourAugment().fit(padded)
    np.testing.assert_allclose(bordered.eigenvalues_, plain.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(bordered.eigenvectors_, plain.eigenvectors_, atol=1e-10)


def test_zero_alpha_is_identity() -> None:
    image = real_images(1)[0]
    augment = PCAColourAugment(alpha_std=0.0).fit(cells_on_black())
    np.testing.assert_array_equal(augment(image, np.random.default_rng(0)), image)


def test_added_colour_has_zero_mean_and_the_alexnet_spread() -> None:
    """Invariant: over many draws the added colour averages to zero (within 5 standard errors), and
    its component along e_i has standard deviation alpha_std * lambda_i."""
    augment = PCAColourAugment(alpha_std=0.1).fit(cells_on_black())
    augment.eigenvalues_ = augment.eigenvalues_ * min(1.0, 300.0 / augment.eigenvalues_[0])  # keep 128 +- shift unclipped
    grey = np.full((2, 2, 3), 128, dtype=np.uint8)
    rng = np.random.default_rng(1)
    shifts = np.array([augment(grey, rng)[0, 0].astype(float) - 128.0 for _ in range(4000)])
    standard_error = shifts.std(axis=0) / np.sqrt(len(shifts))
    assert np.all(np.abs(shifts.mean(axis=0)) < 5 * standard_error + 0.5)
    along_first = shifts @ augment.eigenvectors_[:, 0]
    assert along_first.std() == pytest.approx(0.1 * augment.eigenvalues_[0], rel=0.08)


def test_same_seed_same_output_and_from_eigen_round_trip() -> None:
    image = real_images(1)[0]
    fitted = PCAColourAugment(alpha_std=0.5).fit(real_images())
    restored = PCAColourAugment.from_eigen(fitted.eigenvalues_, fitted.eigenvectors_, alpha_std=0.5)
    out = fitted(image, np.random.default_rng(2))
    np.testing.assert_array_equal(out, fitted(image, np.random.default_rng(2)))
    np.testing.assert_array_equal(out, restored(image, np.random.default_rng(2)))


def test_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        PCAColourAugment()(np.zeros((2, 2, 3), dtype=np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha_std=-1"):
        PCAColourAugment(alpha_std=-1.0)
    with pytest.raises(ValueError, match="all images empty or black"):
        PCAColourAugment().fit([np.zeros((5, 5, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match="image 1"):
        PCAColourAugment().fit([cells_on_black()[0], np.zeros((5, 5), dtype=np.uint8)])


def test_shift_on_a_real_cell_is_tens_of_grey_levels() -> None:
    """AlexNet's 0-255 convention: fitted on real blood-cell images (PBC sample), 200 draws move a cell's mean colour by
    tens of grey levels (at the old [0, 1] scale the largest shift was 4 grey levels: inert)."""
    images = real_images(4)
    augment = PCAColourAugment(alpha_std=0.1).fit(images)
    assert augment.eigenvalues_[0] > 100  # grey levels squared
    rng = np.random.default_rng(0)
    cell = images[0]
    inside = (cell > 0).any(axis=2)
    base = cell[inside].astype(float).mean(axis=0)
    moved = [np.abs(augment(cell, rng)[inside].astype(float).mean(axis=0) - base).max() for _ in range(200)]
    assert max(moved) > 20 and np.median(moved) > 3
