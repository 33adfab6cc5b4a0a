"""The transform protocol and the combinators that chain, gate and choose transforms.

A transform is any callable ``t(image, rng) -> image`` on one uint8 ``H x W x 3`` RGB array that
draws all of its randomness from the ``numpy.random.Generator`` it is given, so a seed reproduces
a run exactly. Transforms never modify their input array.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from blastscope.transforms._checks import check_probability

__all__ = ["Transform", "ParamRepr", "Compose", "RandomApply", "RandomChoice"]


@runtime_checkable
class Transform(Protocol):
    """``__call__(image, rng)``: uint8 H x W x 3 RGB in, uint8 H x W x 3 RGB out (same size)."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


class ParamRepr:
    """Mixin: ``repr`` lists the constructor's parameters, read back from same-named attributes."""

    def __repr__(self) -> str:
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in names if hasattr(self, n))
        return f"{type(self).__name__}({args})"


def _check_transform(t: object) -> None:
    if not callable(t):
        raise TypeError(f"a transform must be callable as t(image, rng), got {t!r}")


class Compose(ParamRepr):
    """Apply ``transforms`` in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            _check_transform(t)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            image = t(image, rng)
        return image


class RandomApply(ParamRepr):
    """Apply ``transform`` with probability ``p``, else return a copy of the image.

    One uniform number is drawn per call whatever the outcome, then the wrapped transform draws
    its own numbers only when it runs.
    """

    def __init__(self, transform: Transform, p: float = 0.5) -> None:
        _check_transform(transform)
        self.transform = transform
        self.p = check_probability("p", p)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.p:
            return self.transform(image, rng)
        return image.copy()


class RandomChoice(ParamRepr):
    """Apply exactly one of ``transforms``, chosen with probabilities ``p`` (uniform by default).

    ``transforms`` may be a mapping ``name -> transform``; the names then appear in ``repr``.
    """

    def __init__(
        self, transforms: Sequence[Transform] | Mapping[str, Transform], p: Sequence[float] | None = None
    ) -> None:
        if isinstance(transforms, Mapping):
            self.transforms: dict[str, Transform] | list[Transform] = dict(transforms)
            items = list(self.transforms.values())
        else:
            self.transforms = list(transforms)
            items = self.transforms
        if not items:
            raise ValueError("transforms must not be empty")
        for t in items:
            _check_transform(t)
        self._items = items
        if p is not None:
            probs = np.asarray(p, dtype=np.float64)
            if probs.shape != (len(items),) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
                raise ValueError(f"p must be {len(items)} non-negative numbers summing to 1, got p={p!r}")
            self.p: list[float] | None = [float(v) for v in probs]
        else:
            self.p = None

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        index = int(rng.choice(len(self._items), p=self.p))
        return self._items[index](image, rng)
