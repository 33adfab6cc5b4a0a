"""Tests for the Spike-PCA-ResNet augmentation: reproducibility, drawn parameters, one warp per image."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import blastscope.transforms.geometric as geometric
from blastscope.transforms.spike_augment import spike_train_transform

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def pbc_image() -> np.ndarray:
    files = sorted((DATA / "pbc-sample").glob("*/*.jpg"))
    if not files:
        pytest.skip(f"PBC sample images not found under {DATA / 'pbc-sample'}")
    return cv2.cvtColor(cv2.imread(str(files[0]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_same_seed_same_output() -> None:
    image = pbc_image()
    transform = spike_train_transform()
    first = transform(image, np.random.default_rng(3))
    np.testing.assert_array_equal(first, transform(image, np.random.default_rng(3)))
    assert first.shape == image.shape
    assert not np.array_equal(first, transform(image, np.random.default_rng(4)))


def test_parameters_within_the_paper_ranges_and_one_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotation in [-30, 30], zoom in [0.8, 1.2], shifts within 10% of width/height, flip p=0.5,
    and exactly one interpolating warp per image."""
    recorded: list[dict] = []
    warps: list[int] = []
    flips: list[str] = []
    real_affine, real_warp, real_flip = geometric.affine_matrix, geometric.warp, geometric.flip

    def affine_spy(**kwargs):
        recorded.append(kwargs)
        return real_affine(**kwargs)

    def warp_spy(image, matrix):
        warps.append(1)
        return real_warp(image, matrix)

    def flip_spy(image, direction):
        flips.append(direction)
        return real_flip(image, direction)

    monkeypatch.setattr(geometric, "affine_matrix", affine_spy)
    monkeypatch.setattr(geometric, "warp", warp_spy)
    monkeypatch.setattr(geometric, "flip", flip_spy)
    height, width = 30, 50
    image = np.zeros((height, width, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    n = 1000
    for _ in range(n):
        spike_train_transform()(image, rng)

    angles = [r["angle_deg"] for r in recorded if "angle_deg" in r]
    scales = [r["scale"] for r in recorded if "scale" in r]
    shifts = np.array([r["translate"] for r in recorded if "translate" in r])
    assert len(angles) == len(scales) == len(shifts) == n == len(warps)
    assert -30.0 <= min(angles) < -29.0 and 29.0 < max(angles) <= 30.0
    assert 0.8 <= min(scales) < 0.81 and 1.19 < max(scales) <= 1.2
    assert np.abs(shifts[:, 0]).max() <= 0.1 * width and np.abs(shifts[:, 1]).max() <= 0.1 * height
    assert set(flips) <= {"horizontal"}
    assert abs(len(flips) - n / 2) < 4.5 * np.sqrt(n / 4)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="zoom=1.5"):
        spike_train_transform(zoom=1.5)
    with pytest.raises(ValueError, match="shift_fraction=-0.1"):
        spike_train_transform(shift_fraction=-0.1)
