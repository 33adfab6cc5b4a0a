"""Intensity transforms: Gaussian blur with a random sigma, grey conversion, histogram equalisation.

The maths is in :mod:`blastscope.ops.geometry`; these classes hold the parameters. ``Grayscale``
and ``HistogramEqualization`` are deterministic and ignore the generator.
"""
from __future__ import annotations

import numpy as np

from blastscope.ops.geometry import equalize_histogram, gaussian_blur, to_grayscale3
from blastscope.transforms._checks import check_range
from blastscope.transforms.compose import ParamRepr

__all__ = ["RandomGaussianBlur", "Grayscale", "HistogramEqualization"]


class RandomGaussianBlur(ParamRepr):
    """Gaussian blur with ``sigma`` (pixels) drawn uniformly from ``sigma = (low, high)``; 0 is no blur.

    Wrap in :class:`~blastscope.transforms.compose.RandomApply` to blur only some images.
    """

    def __init__(self, sigma: tuple[float, float] = (0.0, 0.75)) -> None:
        self.sigma = check_range("sigma", sigma, lower=0.0)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return gaussian_blur(image, rng.uniform(*self.sigma))


class Grayscale(ParamRepr):
    """Replace every channel by the BT.601 luminance (hue and saturation discarded)."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return to_grayscale3(image)


class HistogramEqualization(ParamRepr):
    """Equalise the luminance histogram, keeping chroma (see :func:`blastscope.ops.geometry.equalize_histogram`)."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return equalize_histogram(image)
