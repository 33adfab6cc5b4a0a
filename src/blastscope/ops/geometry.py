"""Pure image geometry and intensity operations on uint8 ``H x W x 3`` RGB arrays (OpenCV).

Conventions shared by every function here:

- Images are ``np.ndarray`` of dtype ``uint8`` and shape ``(H, W, 3)``, RGB, values in [0, 255].
  Every function returns a new C-contiguous array of the same shape and dtype.
- Coordinates are OpenCV's: ``x`` to the right, ``y`` downwards, pixel centres at integer
  positions, so the centre of the image is ``((W - 1) / 2, (H - 1) / 2)`` (see :func:`image_center`).
- A positive angle rotates counter-clockwise *as displayed* (like ``cv2.getRotationMatrix2D`` and
  ``np.rot90``); the LeukemiaNet paper's "clockwise if the angle is negative" matches this.
- Affine matrices are homogeneous ``3 x 3`` float64 arrays mapping *source* pixel coordinates to
  *destination* coordinates, so they compose with ``@`` (``B @ A`` applies ``A`` first).
- Geometric warps fill the area that comes from outside the source with black (0), because the
  single-cell data sets (C-NMC) put cells on a black background.
"""
from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "image_center",
    "affine_matrix",
    "rotation_fit_matrix",
    "shear_deg_from_factor",
    "warp",
    "gaussian_blur",
    "gaussian_kernel_size",
    "flip",
    "equalize_histogram",
    "to_grayscale3",
]


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected a uint8 H x W x 3 RGB array, got shape={shape} dtype={dtype}")


def image_center(shape: tuple[int, ...]) -> tuple[float, float]:
    """Centre ``(cx, cy)`` of an image of ``shape = (H, W, ...)`` in OpenCV pixel coordinates."""
    return ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)


def shear_deg_from_factor(factor: float) -> float:
    """Shear angle in degrees whose tangent is ``factor`` (``x' = x + factor * y``)."""
    return math.degrees(math.atan(factor))


def affine_matrix(
    angle_deg: float = 0.0,
    shear_deg_x: float = 0.0,
    shear_deg_y: float = 0.0,
    scale: float | tuple[float, float] = 1.0,
    translate: tuple[float, float] = (0.0, 0.0),
    center: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Homogeneous 3 x 3 affine matrix (source -> destination) acting about ``center``.

    Applied in this order, all about ``center = (cx, cy)``:

    1. shear: first along y (``y' = y + tan(shear_deg_y) * x``), then along x
       (``x' = x + tan(shear_deg_x) * y``); the product has determinant 1, so shearing
       never changes area, even with both angles non-zero;
    2. rotation by ``angle_deg`` (positive = counter-clockwise as displayed);
    3. scale, a number or ``(sx, sy)`` (after the rotation, so an anisotropic scale
       resizes the rotated picture along the image axes);
    4. translation by ``translate = (tx, ty)`` pixels.

    With zero shear and translation this equals ``cv2.getRotationMatrix2D(center, angle_deg, scale)``
    (as its first two rows).

    Returns:
        float64 array of shape (3, 3), last row ``[0, 0, 1]``.
    """
    for name, value in (("shear_deg_x", shear_deg_x), ("shear_deg_y", shear_deg_y)):
        if not -90.0 < value < 90.0:
            raise ValueError(f"{name} must be in (-90, 90) degrees, got {name}={value}")
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    if sx <= 0 or sy <= 0:
        raise ValueError(f"scale must be positive, got scale={scale}")
    cx, cy = center
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx + translate[0]], [0.0, 1.0, cy + translate[1]], [0.0, 0.0, 1.0]])
    shear_y = np.array([[1.0, 0.0, 0.0], [math.tan(math.radians(shear_deg_y)), 1.0, 0.0], [0.0, 0.0, 1.0]])
    shear_x = np.array([[1.0, math.tan(math.radians(shear_deg_x)), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    a = math.radians(angle_deg)
    # y points down, so a counter-clockwise turn on screen has +sin in the first row.
    rotation = np.array([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    scaling = np.diag([float(sx), float(sy), 1.0])
    return back @ scaling @ rotation @ shear_x @ shear_y @ to_origin


def rotation_fit_matrix(angle_deg: float, height: int, width: int) -> np.ndarray:
    """Rotation about the image centre, shrunk so the whole rotated image fits the same canvas.

    Equals rotating onto the enlarged canvas that holds the entire rotated image
    (``W' = W|cos| + H|sin|``, ``H' = W|sin| + H|cos|``) and resizing that canvas back to
    ``H x W`` (anisotropic when ``H != W``), as one matrix so a single interpolation is done.

    Returns:
        float64 array of shape (3, 3).
    """
    a = math.radians(angle_deg)
    c, s = abs(math.cos(a)), abs(math.sin(a))
    fit_w, fit_h = width * c + height * s, width * s + height * c
    return affine_matrix(
        angle_deg=angle_deg, scale=(width / fit_w, height / fit_h), center=image_center((height, width))
    )


def warp(image: np.ndarray, matrix: np.ndarray, border_value: int = 0) -> np.ndarray:
    """Apply an affine ``matrix`` (3 x 3 or 2 x 3, source -> destination) with bilinear interpolation.

    The output has the input's size; destination pixels whose source lies outside the image are
    set to ``border_value`` in all channels (black by default).
    """
    _check_image(image)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape not in ((2, 3), (3, 3)):
        raise ValueError(f"matrix must have shape (2, 3) or (3, 3), got shape={matrix.shape}")
    height, width = image.shape[:2]
    # OpenCV's vectorised bilinear warp covers 4-channel uint8 but not 3-channel: warping RGBA
    # and dropping alpha gives the same RGB values (tested) in about half the time.
    rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
    out = cv2.warpAffine(
        rgba,
        matrix[:2],
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value, border_value, border_value, 0),
    )
    return cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)


def gaussian_kernel_size(sigma: float, truncate: float = 4.0) -> int:
    """Odd kernel width covering ``truncate`` standard deviations each side (scipy's rule)."""
    return 2 * int(math.ceil(truncate * sigma)) + 1


def gaussian_blur(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Isotropic Gaussian blur with standard deviation ``sigma`` pixels; ``sigma == 0`` is the identity.

    The kernel spans ``truncate * sigma`` pixels each side (as ``scipy.ndimage.gaussian_filter``)
    and is normalised to sum 1. Borders are mirrored including the edge pixel
    (``cv2.BORDER_REFLECT`` = scipy's ``mode="reflect"``). The filter runs in float32 and is rounded
    once, so the result is within one grey level of the exact filter.
    """
    _check_image(image)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got sigma={sigma}")
    if sigma == 0:
        return image.copy()
    k = gaussian_kernel_size(sigma, truncate)
    # the separable filter of cv2.GaussianBlur's kernel, reading uint8 and accumulating in float32,
    # rounded in place: the same values as blurring a float32 copy, without the temporaries
    kernel = cv2.getGaussianKernel(k, sigma, cv2.CV_32F)
    blurred = cv2.sepFilter2D(image, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    np.rint(blurred, out=blurred)
    np.clip(blurred, 0, 255, out=blurred)
    return blurred.astype(np.uint8)


def flip(image: np.ndarray, direction: Literal["horizontal", "vertical"]) -> np.ndarray:
    """Mirror left-right (``"horizontal"``, reflection about the y axis) or upside-down
    (``"vertical"``, reflection about the x axis)."""
    _check_image(image)
    codes = {"horizontal": 1, "vertical": 0}
    if direction not in codes:
        raise ValueError(f"direction must be 'horizontal' or 'vertical', got direction={direction!r}")
    return cv2.flip(image, codes[direction])


def to_grayscale3(image: np.ndarray) -> np.ndarray:
    """Luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, as MATLAB ``rgb2gray``),
    repeated in three channels so the result still fits an RGB model."""
    _check_image(image)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def equalize_histogram(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of the luminance, keeping the chroma.

    The image goes to YCrCb (BT.601), ``cv2.equalizeHist`` remaps Y through its cumulative
    histogram, and the result goes back to RGB. Equalising luminance rather than each channel
    keeps hues (per-channel equalisation shifts stain colours); on a grey image (R = G = B) it is
    exactly the grey-level equalisation the LeukemiaNet paper describes.
    """
    _check_image(image)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycrcb[:, :, 0] = cv2.equalizeHist(np.ascontiguousarray(ycrcb[:, :, 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
