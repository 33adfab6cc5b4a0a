"""LeukemiaNet's conventional augmentations (LeukemiaNet paper, section 3.1.1 and Fig. 2).

The paper lists: conversion to grey (luminance kept, hue and saturation dropped); Gaussian blur
with sigma drawn in [4, 8], of the RGB image and of its grey version; histogram equalisation;
reflection about the x axis and about the y axis; rotation by a random angle (negative =
clockwise) onto a canvas that holds the whole rotated image, resized back to the original
size; translation by a displacement drawn uniformly in [25, 50]; vertical and horizontal
shear with the "distortion" drawn in [0.3, 1]. Fig. 2 shows each applied on its own to the
original image, and Dataset 1 (141 originals -> 1,492 images, section 4.3) is close to the
original plus one image per augmentation (141 x 11 = 1,551), so they are applied singly, not
chained: :func:`leukemianet_conventional_transform` picks ONE per call, and
:func:`leukemianet_conventional_augmentations` gives them by name for offline expansion
(:func:`blastscope.transforms.expand.expand_dataset` writes one image per name and copy).

Choices where the paper is silent or unclear (all parameters of the factories):
- rotation range: the paper's range is lost from the text; cells have no preferred
  orientation, so the default is uniform in [-180, 180] degrees. The rotate-expand-resize of
  the paper is one warp here (:func:`blastscope.ops.geometry.rotation_fit_matrix`).
- "distortion" is read as the shear factor ``k`` in ``x' = x + k * y`` (MATLAB's shear
  matrix), i.e. shear angles atan(0.3) = 16.7 to atan(1) = 45 degrees, about the centre.
- translation moves along both axes at once, each by its own draw, in pixels of the image as
  given (the paper does not say at which resolution).
- signs: the paper gives translation and shear as positive ranges; ``symmetric=True`` draws a
  random sign for each (default False keeps the paper's positive ranges).
- histogram equalisation acts on the luminance and keeps the colour; on a grey image this is the
  paper's grey-level equalisation (see :func:`blastscope.ops.geometry.equalize_histogram`).
- geometric warps fill with black; blur mirrors the border.
"""
from __future__ import annotations

from typing import Any

from blastscope.ops.geometry import shear_deg_from_factor
from blastscope.transforms._checks import check_range
from blastscope.transforms.compose import Compose, RandomChoice, Transform
from blastscope.transforms.geometric import RandomFlip, RandomRotation, RandomShear, RandomTranslate
from blastscope.transforms.photometric import Grayscale, HistogramEqualization, RandomGaussianBlur

__all__ = [
    "CONVENTIONAL_AUGMENTATIONS",
    "leukemianet_conventional_augmentations",
    "leukemianet_conventional_transform",
]

CONVENTIONAL_AUGMENTATIONS: tuple[str, ...] = (
    "grayscale",
    "blur",
    "grayscale_blur",
    "histogram_equalization",
    "reflect_x",
    "reflect_y",
    "rotate",
    "translate",
    "shear_x",
    "shear_y",
)
"""Names of the single conventional augmentations, in the paper's order."""


def leukemianet_conventional_augmentations(
    blur_sigma: tuple[float, float] = (4.0, 8.0),
    rotation_deg: tuple[float, float] = (-180.0, 180.0),
    translate_px: tuple[float, float] = (25.0, 50.0),
    shear_factor: tuple[float, float] = (0.3, 1.0),
    symmetric: bool = False,
) -> dict[str, Transform]:
    """The single augmentations of section 3.1.1, keyed by the names in ``CONVENTIONAL_AUGMENTATIONS``.

    ``reflect_x`` mirrors upside-down (about the x axis), ``reflect_y`` left-right. ``shear_x``
    shears along x (horizontal shear), ``shear_y`` along y.
    """
    blur_sigma = check_range("blur_sigma", blur_sigma, lower=0.0)
    translate_px = check_range("translate_px", translate_px)
    low, high = check_range("shear_factor", shear_factor, lower=-100.0, upper=100.0)
    shear_deg = (shear_deg_from_factor(low), shear_deg_from_factor(high))
    augmentations: dict[str, Transform] = {
        "grayscale": Grayscale(),
        "blur": RandomGaussianBlur(sigma=blur_sigma),
        "grayscale_blur": Compose([Grayscale(), RandomGaussianBlur(sigma=blur_sigma)]),
        "histogram_equalization": HistogramEqualization(),
        "reflect_x": RandomFlip("vertical", p=1.0),
        "reflect_y": RandomFlip("horizontal", p=1.0),
        "rotate": RandomRotation(degrees=rotation_deg, fit=True),
        "translate": RandomTranslate(x=translate_px, y=translate_px, random_sign=symmetric),
        "shear_x": RandomShear(x_deg=shear_deg, random_sign=symmetric),
        "shear_y": RandomShear(y_deg=shear_deg, random_sign=symmetric),
    }
    return augmentations


def leukemianet_conventional_transform(**kwargs: Any) -> RandomChoice:
    """Apply ONE conventional augmentation per call, chosen uniformly among the ten.

    Keyword arguments are those of :func:`leukemianet_conventional_augmentations`.
    """
    return RandomChoice(leukemianet_conventional_augmentations(**kwargs))
