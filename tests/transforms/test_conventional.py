"""Tests for LeukemiaNet's conventional augmentations (section 3.1.1), each against an independent check."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from blastscope.transforms.conventional import (
    CONVENTIONAL_AUGMENTATIONS,
    leukemianet_conventional_augmentations,
    leukemianet_conventional_transform,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def real_image() -> np.ndarray:
    files = sorted((DATA / "aml-cytomorphology-sample").glob("*/*.tiff"))
    if not files:
        pytest.skip(f"real images not found under {DATA / 'aml-cytomorphology-sample'}")
    rgb = cv2.cvtColor(cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGB)
    return cv2.resize(rgb, (160, 160), interpolation=cv2.INTER_AREA)


def bar_image(vertical: bool, size: int = 161) -> np.ndarray:
    image = np.zeros((size, size, 3), dtype=np.uint8)
    centre = size // 2
    if vertical:
        image[20:-20, centre - 1 : centre + 2] = 255
    else:
        image[centre - 1 : centre + 2, 20:-20] = 255
    return image


def augmentations() -> dict:
    return leukemianet_conventional_augmentations()


def test_names_and_order() -> None:
    assert tuple(augmentations()) == CONVENTIONAL_AUGMENTATIONS
    assert len(CONVENTIONAL_AUGMENTATIONS) == 10


def test_transform_applies_exactly_one_named_augmentation() -> None:
    """Invariant: each call's output equals one single augmentation applied to the original
    (none are combined), and all ten are chosen over many calls."""
    image = real_image()[::2, ::2].copy()
    transform = leukemianet_conventional_transform()
    singles = augmentations()
    chosen = set()
    for seed in range(200):
        out = transform(image, np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        name = CONVENTIONAL_AUGMENTATIONS[int(replay.choice(len(CONVENTIONAL_AUGMENTATIONS)))]
        np.testing.assert_array_equal(out, singles[name](image, replay))
        chosen.add(name)
    assert chosen == set(CONVENTIONAL_AUGMENTATIONS)


def test_grayscale_is_luminance() -> None:
    image = real_image()
    out = augmentations()["grayscale"](image, np.random.default_rng(0))
    expected = image.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out[:, :, 2] - expected).max() <= 1.0


@pytest.mark.parametrize("name", ["blur", "grayscale_blur"])
def test_blur_sigma_drawn_in_4_to_8(name: str) -> None:
    image = real_image()
    seed = 5
    out = augmentations()[name](image, np.random.default_rng(seed))
    sigma = np.random.default_rng(seed).uniform(4.0, 8.0)
    source = image if name == "blur" else np.repeat((image.astype(float) @ [0.299, 0.587, 0.114]).round()[:, :, None], 3, 2)
    reference = np.stack([ndimage.gaussian_filter(source[:, :, c].astype(float), sigma) for c in range(3)], axis=2)
    assert np.abs(out - reference).max() <= 1.5
    assert np.abs(out.astype(float) - image).mean() > 2.0


def test_reflections() -> None:
    image = real_image()
    singles = augmentations()
    np.testing.assert_array_equal(singles["reflect_x"](image, np.random.default_rng(0)), image[::-1])
    np.testing.assert_array_equal(singles["reflect_y"](image, np.random.default_rng(0)), image[:, ::-1])


def test_histogram_equalization_spreads_luminance() -> None:
    image = real_image()
    out = augmentations()["histogram_equalization"](image, np.random.default_rng(0))
    y = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)[:, :, 0]
    counts = np.histogram(y, bins=4, range=(0, 256))[0] / y.size
    assert np.all(np.abs(counts - 0.25) < 0.1)  # the original is mostly light background


def test_rotation_keeps_the_whole_image() -> None:
    """Invariant: the rotate-to-fit never cuts content: the image mass scales by the matrix's area
    factor (W H / (W' H')), unlike a plain rotation that loses the corners."""
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out = augmentations()["rotate"](image, rng)
        angle = math.radians(np.random.default_rng(seed).uniform(-180.0, 180.0))
        c, s = abs(math.cos(angle)), abs(math.sin(angle))
        area_factor = 1.0 / (c + s) ** 2
        assert out.astype(float).sum() / image.astype(float).sum() == pytest.approx(area_factor, rel=0.03)


def test_translation_between_25_and_50_pixels() -> None:
    image = np.zeros((160, 160, 3), dtype=np.uint8)
    image[60:80, 60:80] = 255
    ys, xs = np.nonzero(image[:, :, 0])
    for seed in range(10):
        out = augmentations()["translate"](image, np.random.default_rng(seed))
        oys, oxs = np.nonzero(out[:, :, 0] > 127)
        dx, dy = oxs.mean() - xs.mean(), oys.mean() - ys.mean()
        assert 24.5 <= dx <= 50.5 and 24.5 <= dy <= 50.5


@pytest.mark.parametrize("name", ["shear_x", "shear_y"])
def test_shear_factor_between_0_3_and_1(name: str) -> None:
    """A shear along x tilts a vertical bar to slope dx/dy = k; along y a horizontal bar to dy/dx = k."""
    vertical = name == "shear_x"
    image = bar_image(vertical)
    for seed in range(10):
        out = augmentations()[name](image, np.random.default_rng(seed))[:, :, 0].astype(float)
        if vertical:
            rows = np.nonzero(out.sum(axis=1) > 100)[0]
            positions = [(out[r] * np.arange(out.shape[1])).sum() / out[r].sum() for r in rows]
            slope = np.polyfit(rows, positions, 1)[0]
        else:
            cols = np.nonzero(out.sum(axis=0) > 100)[0]
            positions = [(out[:, c] * np.arange(out.shape[0])).sum() / out[:, c].sum() for c in cols]
            slope = np.polyfit(cols, positions, 1)[0]
        assert 0.29 <= slope <= 1.01


def test_symmetric_draws_both_signs() -> None:
    image = np.zeros((160, 160, 3), dtype=np.uint8)
    image[70:90, 70:90] = 255
    translate = leukemianet_conventional_augmentations(symmetric=True)["translate"]
    signs = set()
    for seed in range(20):
        out = translate(image, np.random.default_rng(seed))
        signs.add(np.sign(np.nonzero(out[:, :, 0] > 127)[1].mean() - 79.5))
    assert signs == {-1.0, 1.0}


def test_invalid_ranges_raise() -> None:
    with pytest.raises(ValueError, match="blur_sigma"):
        leukemianet_conventional_augmentations(blur_sigma=(8.0, 4.0))
    with pytest.raises(ValueError, match="translate_px"):
        leukemianet_conventional_transform(translate_px=(50.0, 25.0))
