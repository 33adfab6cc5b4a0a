"""Tests for blastscope.transforms.compose: order, gating probability, single choice, repr, checks."""
from __future__ import annotations

import numpy as np
import pytest

from blastscope.transforms.compose import Compose, RandomApply, RandomChoice, Transform
from blastscope.transforms.geometric import RandomFlip
from blastscope.transforms.photometric import Grayscale


class AddConstant:
    """Adds ``value`` to every pixel and records each call."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.calls += 1
        return (image.astype(int) + self.value).clip(0, 255).astype(np.uint8)


def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 200, (6, 7, 3), dtype=np.uint8)


def test_compose_applies_in_order() -> None:
    img = image()
    result = Compose([RandomFlip("horizontal", p=1.0), Grayscale()])(img, np.random.default_rng(0))
    flipped = img[:, ::-1].astype(float)
    expected = flipped @ np.array([0.299, 0.587, 0.114])
    assert np.abs(result[:, :, 1] - expected).max() <= 1.0
    assert isinstance(Compose([]), Transform)


def test_random_apply_frequency_is_binomial() -> None:
    """Invariant: the wrapped transform runs in a fraction p of calls (within 4.5 binomial standard deviations)."""
    spy = AddConstant(1)
    gate = RandomApply(spy, p=0.3)
    rng = np.random.default_rng(1)
    n = 4000
    for _ in range(n):
        gate(image(), rng)
    assert abs(spy.calls - 0.3 * n) < 4.5 * np.sqrt(n * 0.3 * 0.7)


def test_random_apply_returns_a_copy_when_skipped() -> None:
    img = image()
    out = RandomApply(AddConstant(1), p=0.0)(img, np.random.default_rng(0))
    np.testing.assert_array_equal(out, img)
    assert out is not img


def test_random_choice_applies_exactly_one() -> None:
    spies = [AddConstant(1), AddConstant(10), AddConstant(100)]
    choice = RandomChoice(spies, p=[0.2, 0.3, 0.5])
    rng = np.random.default_rng(2)
    n = 3000
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    for _ in range(n):
        out = choice(img, rng)
        assert int(out[0, 0, 0]) in (1, 10, 100)
    assert sum(s.calls for s in spies) == n
    for spy, p in zip(spies, [0.2, 0.3, 0.5]):
        assert abs(spy.calls - p * n) < 4.5 * np.sqrt(n * p * (1 - p))


def test_same_seed_same_result() -> None:
    pipeline = Compose([RandomApply(RandomFlip("horizontal"), 0.5), RandomChoice({"a": AddConstant(3), "b": Grayscale()})])
    outs = [pipeline(image(), np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(*outs)


def test_repr_lists_parameters() -> None:
    text = repr(Compose([RandomApply(RandomFlip("vertical", p=0.25), p=0.4), RandomChoice({"gray": Grayscale()})]))
    for fragment in ("Compose(", "RandomApply(", "p=0.4", "direction='vertical'", "p=0.25", "'gray': Grayscale()"):
        assert fragment in text


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="p=1.5"):
        RandomApply(Grayscale(), p=1.5)
    with pytest.raises(ValueError, match="empty"):
        RandomChoice([])
    with pytest.raises(ValueError, match="summing to 1"):
        RandomChoice([Grayscale(), Grayscale()], p=[0.5, 0.6])
    with pytest.raises(TypeError, match="callable"):
        Compose([3])  # type: ignore[list-item]
