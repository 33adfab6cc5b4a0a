"""Tests for the SDCT-AuxNet-theta training transform: reproducibility, drawn parameters, black background."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import blastscope.transforms.geometric as geometric
import blastscope.transforms.photometric as photometric
from blastscope.transforms.geometric import RandomRotation
from blastscope.transforms.sdct_augment import sdct_train_transform

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def cnmc_cell() -> np.ndarray:
    files = sorted((DATA / "cnmc-samples" / "labeled").glob("*.bmp"))
    if not files:
        pytest.skip(f"C-NMC sample images not found under {DATA / 'cnmc-samples'}")
    return cv2.cvtColor(cv2.imread(str(files[0]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def centred_disc(size: int = 64, radius: int = 12) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    inside = (x - centre) ** 2 + (y - centre) ** 2 <= radius**2
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[inside] = (180, 90, 200)
    return image


def distance_from_centre(shape: tuple[int, ...]) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.hypot(x - (shape[1] - 1) / 2, y - (shape[0] - 1) / 2)


def test_same_seed_same_output_and_seeds_differ() -> None:
    image = cnmc_cell()[::4, ::4].copy()
    transform = sdct_train_transform()
    first = transform(image, np.random.default_rng(11))
    np.testing.assert_array_equal(first, transform(image, np.random.default_rng(11)))
    assert first.shape == image.shape and first.dtype == np.uint8
    assert any(not np.array_equal(first, transform(image, np.random.default_rng(s))) for s in range(12, 15))


def test_drawn_parameters_follow_the_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flips p=0.5 each, shear p=0.5 within +-20 degrees, blur p=0.2 with sigma in [0, 0.75],
    rotation in [0, 360) every time; frequencies within 4.5 binomial standard deviations."""
    calls: dict[str, list] = {"flip": [], "shear": [], "rotation": [], "blur": []}
    real_affine, real_blur, real_flip = geometric.affine_matrix, photometric.gaussian_blur, geometric.flip

    def affine_spy(**kwargs):
        if kwargs.get("shear_deg_x", 0.0) or kwargs.get("shear_deg_y", 0.0):
            calls["shear"].append((kwargs.get("shear_deg_x", 0.0), kwargs.get("shear_deg_y", 0.0)))
        if "angle_deg" in kwargs:
            calls["rotation"].append(kwargs["angle_deg"])
        return real_affine(**kwargs)

    def blur_spy(image, sigma):
        calls["blur"].append(sigma)
        return real_blur(image, sigma)

    def flip_spy(image, direction):
        calls["flip"].append(direction)
        return real_flip(image, direction)

    monkeypatch.setattr(geometric, "affine_matrix", affine_spy)
    monkeypatch.setattr(photometric, "gaussian_blur", blur_spy)
    monkeypatch.setattr(geometric, "flip", flip_spy)

    transform = sdct_train_transform()
    image = np.zeros((12, 12, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    n = 2000
    for _ in range(n):
        transform(image, rng)

    def binomial_ok(count: int, p: float) -> bool:
        return abs(count - p * n) < 4.5 * np.sqrt(n * p * (1 - p))

    assert binomial_ok(calls["flip"].count("horizontal"), 0.5)
    assert binomial_ok(calls["flip"].count("vertical"), 0.5)
    assert binomial_ok(len(calls["shear"]), 0.5)
    assert all(-20.0 <= sx <= 20.0 and sy == 0.0 for sx, sy in calls["shear"])
    assert binomial_ok(len(calls["blur"]), 0.2)
    assert all(0.0 <= s <= 0.75 for s in calls["blur"])
    assert len(calls["rotation"]) == n
    assert all(0.0 <= a < 360.0 for a in calls["rotation"])
    assert min(calls["rotation"]) < 5.0 and max(calls["rotation"]) > 355.0


def test_black_background_stays_black_under_rotation() -> None:
    """Invariant: rotating a centred cell on black leaves every pixel farther than the cell's
    radius (+1.5 px for interpolation) exactly black; the full SDCT chain too, allowing the 20-degree
    shear's stretch (largest singular value of [[1, tan 20], [0, 1]] ~ 1.2)."""
    disc = centred_disc()
    far = distance_from_centre(disc.shape) > 12 + 1.5
    rotation = RandomRotation((0.0, 360.0))
    for seed in range(30):
        assert rotation(disc, np.random.default_rng(seed))[far].max() == 0
    stretched = distance_from_centre(disc.shape) > 12 * 1.2 + 1.5
    transform = sdct_train_transform()
    for seed in range(30):
        assert transform(disc, np.random.default_rng(seed))[stretched].max() == 0


def test_black_background_of_real_cell_stays_black() -> None:
    """Invariant: for a real C-NMC cell, pixels beyond its farthest non-black pixel stay black under rotation."""
    cell = cnmc_cell()[::2, ::2].copy()
    distance = distance_from_centre(cell.shape)
    radius = distance[(cell > 0).any(axis=2)].max()
    if radius > min(cell.shape[:2]) / 2 - 2:
        pytest.skip("this sample's cell touches the border")
    rotation = RandomRotation((0.0, 360.0))
    for seed in range(5):
        out = rotation(cell, np.random.default_rng(seed))
        assert out[distance > radius + 1.5].max() == 0
        assert abs(int((out > 0).any(axis=2).sum()) - int((cell > 0).any(axis=2).sum())) < 0.05 * (cell > 0).any(axis=2).sum()


def test_invalid_shear_raises() -> None:
    with pytest.raises(ValueError, match="shear_deg=95"):
        sdct_train_transform(shear_deg=95.0)
