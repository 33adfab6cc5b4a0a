"""Random geometric transforms: flip, rotation, shear, translation, zoom, and their fusion.

Each class draws its parameters from the given generator and builds a 3 x 3 affine matrix with
:mod:`blastscope.ops.geometry` (``sample_matrix``); calling it warps once with bilinear
interpolation and a black fill (cells sit on black backgrounds). :class:`FusedAffine` multiplies
the matrices of several of them and warps once, as Keras' ``ImageDataGenerator`` does, instead of
interpolating once per step. All act about the image centre ``((W - 1) / 2, (H - 1) / 2)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from blastscope.ops.geometry import affine_matrix, flip, image_center, rotation_fit_matrix, warp
from blastscope.transforms._checks import check_probability, check_range
from blastscope.transforms.compose import ParamRepr

__all__ = [
    "RandomAffineTransform",
    "RandomFlip",
    "RandomRotation",
    "RandomShear",
    "RandomTranslate",
    "RandomZoom",
    "FusedAffine",
]

Range = tuple[float, float]


def _signed(value: float, random_sign: bool, rng: np.random.Generator) -> float:
    if random_sign and rng.random() < 0.5:
        return -value
    return value


class RandomAffineTransform(ParamRepr):
    """Base class: subclasses implement ``sample_matrix``; calling warps the image with it."""

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw parameters and return the 3 x 3 source -> destination matrix for an image of ``shape``."""
        raise NotImplementedError

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return warp(image, self.sample_matrix(image.shape, rng))


class RandomFlip(RandomAffineTransform):
    """Mirror the image with probability ``p``.

    ``direction="horizontal"`` mirrors left-right (reflection about the y axis), ``"vertical"``
    upside-down (reflection about the x axis). ``p=1`` gives a deterministic reflection.
    """

    def __init__(self, direction: Literal["horizontal", "vertical"] = "horizontal", p: float = 0.5) -> None:
        if direction not in ("horizontal", "vertical"):
            raise ValueError(f"direction must be 'horizontal' or 'vertical', got direction={direction!r}")
        self.direction = direction
        self.p = check_probability("p", p)

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        matrix = np.eye(3)
        if rng.random() < self.p:
            axis = 0 if self.direction == "horizontal" else 1
            matrix[axis, axis] = -1.0
            matrix[axis, 2] = shape[1 - axis] - 1.0
        return matrix

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # cv2.flip is exact and faster than an equivalent warp.
        if rng.random() < self.p:
            return flip(image, self.direction)
        return image.copy()


class RandomRotation(RandomAffineTransform):
    """Rotate by an angle drawn uniformly from ``degrees = (low, high)`` (positive = counter-clockwise).

    ``fit=False`` keeps the scale, so corners leave the frame and black enters it. ``fit=True``
    shrinks the rotated image so all of it stays in the frame (the result of rotating onto a
    canvas large enough to hold it, then resizing that canvas to the original size).
    """

    def __init__(self, degrees: Range = (0.0, 360.0), fit: bool = False) -> None:
        self.degrees = check_range("degrees", degrees)
        self.fit = bool(fit)

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        angle = rng.uniform(*self.degrees)
        if self.fit:
            return rotation_fit_matrix(angle, shape[0], shape[1])
        return affine_matrix(angle_deg=angle, center=image_center(shape))


class RandomShear(RandomAffineTransform):
    """Shear along x by an angle from ``x_deg`` and/or along y by an angle from ``y_deg``.

    A shear along x by angle ``s`` maps ``x -> x + tan(s) * (y - cy)``. Angles are uniform in the
    given range; ``random_sign=True`` then negates each with probability 1/2 (for ranges given as
    magnitudes). Use :func:`blastscope.ops.geometry.shear_deg_from_factor` to give a shear factor.
    """

    def __init__(self, x_deg: Range | None = None, y_deg: Range | None = None, random_sign: bool = False) -> None:
        if x_deg is None and y_deg is None:
            raise ValueError("give at least one of x_deg and y_deg, got x_deg=None y_deg=None")
        self.x_deg = None if x_deg is None else check_range("x_deg", x_deg, -89.9, 89.9)
        self.y_deg = None if y_deg is None else check_range("y_deg", y_deg, -89.9, 89.9)
        self.random_sign = bool(random_sign)

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        angles = []
        for rng_range in (self.x_deg, self.y_deg):
            angle = 0.0 if rng_range is None else _signed(rng.uniform(*rng_range), self.random_sign, rng)
            angles.append(angle)
        return affine_matrix(shear_deg_x=angles[0], shear_deg_y=angles[1], center=image_center(shape))


class RandomTranslate(RandomAffineTransform):
    """Shift by ``dx`` drawn from ``x`` and ``dy`` drawn from ``y`` (uniform).

    With ``relative=True`` the ranges are fractions of the width and height (Keras'
    ``width_shift_range=0.1`` is ``x=(-0.1, 0.1), relative=True``), else pixels.
    ``random_sign=True`` negates each shift with probability 1/2 (for ranges given as magnitudes).
    """

    def __init__(
        self, x: Range = (0.0, 0.0), y: Range = (0.0, 0.0), relative: bool = False, random_sign: bool = False
    ) -> None:
        self.x = check_range("x", x)
        self.y = check_range("y", y)
        self.relative = bool(relative)
        self.random_sign = bool(random_sign)

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        dx = _signed(rng.uniform(*self.x), self.random_sign, rng)
        dy = _signed(rng.uniform(*self.y), self.random_sign, rng)
        if self.relative:
            dx, dy = dx * shape[1], dy * shape[0]
        return affine_matrix(translate=(dx, dy), center=image_center(shape))


class RandomZoom(RandomAffineTransform):
    """Scale isotropically about the centre by a factor uniform in ``scale`` (> 1 enlarges the cell)."""

    def __init__(self, scale: Range = (0.8, 1.2)) -> None:
        self.scale = check_range("scale", scale, lower=1e-6)

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return affine_matrix(scale=rng.uniform(*self.scale), center=image_center(shape))


class FusedAffine(RandomAffineTransform):
    """Draw every listed transform's matrix, multiply them (first listed acts first), warp once."""

    def __init__(self, transforms: Sequence[RandomAffineTransform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not isinstance(t, RandomAffineTransform):
                raise TypeError(f"FusedAffine takes RandomAffineTransform instances, got {t!r}")

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        matrix = np.eye(3)
        for t in self.transforms:
            matrix = t.sample_matrix(shape, rng) @ matrix
        return matrix

