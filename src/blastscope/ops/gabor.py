"""Gabor edge kernels for first-spike edge coding.

Noshad & Fallahi (2021), Section 2.2, Eqs. (1)-(2): four Gabor filters ``G(theta_l)`` with
``theta_l = (l - 1) * pi / 4 + pi / 8`` (l = 1..4), window 4 x 4, wavelength 2.5, effective
width 2; the feature maps are ``S_l = |I (*) G(theta_l)|``.

The kernel follows the SpykeTorch ``GaborKernel`` conventions (Mozafari et al.), which the
paper builds on. With a pixel offset ``(r, c)`` from the window centre (r down the rows,
c along the columns)::

    X = r cos(theta) + c sin(theta)
    Y = c cos(theta) - r sin(theta)
    G(r, c) = exp(-(X^2 + gamma^2 Y^2) / (2 sigma^2)) * cos(2 pi X / lambda)

then ``G <- G - mean(G)`` and ``G <- G / max(G)``, so every kernel sums to 0 and peaks at 1.
SpykeTorch derives ``lambda = 2 * window / 4`` and ``sigma = 0.8 * lambda`` from the window
(:func:`spyketorch_gabor_params`) and uses ``gamma = 0.3``.

"Effective width" is the name Masquelier & Thorpe (2007) give to ``sigma``, the standard
deviation of the Gaussian envelope, so the paper's effective width 2 is ``sigma = 2`` here.

Deliberate differences from SpykeTorch:

* Window size. SpykeTorch samples offsets ``-(w//2) .. w//2``, so an even ``window_size`` gives
  a ``(w + 1) x (w + 1)`` kernel (its "4 x 4" is really 5 x 5). We sample exactly
  ``window x window`` points centred on the window, i.e. half-integer offsets
  (-1.5, -0.5, 0.5, 1.5) for an even window; odd windows are identical to SpykeTorch. Note the
  paper's wavelength 2.5 / effective width 2 are exactly SpykeTorch's derived values for
  ``window_size=5``; pass ``window=5`` to reproduce that kernel.
* Orientation set. The SpykeTorch recipe uses 45, 90, 135, 180 degrees each + 22.5
  (67.5, 112.5, 157.5, 202.5); since ``G`` is unchanged by ``theta -> theta + 180``, this is the
  paper's set {22.5, 67.5, 112.5, 157.5} in a rotated order (202.5 == 22.5 comes last).

``G(-r, -c) = G(r, c)`` on the centred grid, so convolution and cross-correlation (what
``torch.nn.functional.conv2d`` computes) give the same response.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

__all__ = ["gabor_kernel", "gabor_bank", "spyketorch_gabor_params"]


def spyketorch_gabor_params(window: int, div: float = 4.0) -> tuple[float, float]:
    """SpykeTorch's wavelength and sigma for a window: ``lambda = 2 * window / div``, ``sigma = 0.8 * lambda``.

    Returns ``(wavelength, sigma)``; ``window=5`` gives the paper's (2.5, 2.0).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got window={window}")
    if div <= 0:
        raise ValueError(f"div must be > 0, got div={div}")
    wavelength = 2.0 * window / div
    return wavelength, 0.8 * wavelength


def gabor_kernel(
    window: int,
    orientation_deg: float,
    wavelength: float,
    sigma: float,
    gamma: float = 0.3,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One normalised Gabor kernel (see the module docstring for the formula).

    Args:
        window: side length in pixels (>= 2); the kernel is ``window x window``.
        orientation_deg: ``theta`` in degrees.
        wavelength: ``lambda`` in pixels (> 0).
        sigma: Gaussian envelope standard deviation, the paper's "effective width" (> 0).
        gamma: spatial aspect ratio (> 0).

    Returns:
        Tensor ``(window, window)`` with mean 0 and maximum 1.
    """
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 2:
        raise ValueError(f"window must be an integer >= 2, got window={window!r}")
    window = int(window)
    for name, value in (("wavelength", wavelength), ("sigma", sigma), ("gamma", gamma)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {name}={value}")
    theta = math.radians(orientation_deg)
    offsets = torch.arange(window, dtype=torch.float64) - (window - 1) / 2.0
    r, c = torch.meshgrid(offsets, offsets, indexing="ij")
    x_rot = r * math.cos(theta) + c * math.sin(theta)
    y_rot = c * math.cos(theta) - r * math.sin(theta)
    g = torch.exp(-(x_rot**2 + gamma**2 * y_rot**2) / (2.0 * sigma**2)) * torch.cos(
        2.0 * math.pi * x_rot / wavelength
    )
    g = g - g.mean()
    peak = g.max()
    if not peak > 0:
        raise ValueError(
            f"Gabor kernel is constant after mean removal (window={window}, wavelength={wavelength}, sigma={sigma})"
        )
    return (g / peak).to(dtype)


def gabor_bank(
    window: int = 4,
    wavelength: float | None = 2.5,
    sigma: float | None = 2.0,
    orientations: Sequence[float] = (45.0, 90.0, 135.0, 180.0),
    offset_deg: float = 22.5,
    gamma: float = 0.3,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Stack of Gabor kernels ready for ``conv2d``: orientation ``o + offset_deg`` for each ``o``.

    Defaults are the paper's window 4, wavelength 2.5, effective width (sigma) 2 and the
    SpykeTorch orientations 45/90/135/180 + 22.5 degrees. ``wavelength=None`` takes SpykeTorch's
    ``2 * window / 4`` and ``sigma=None`` takes ``0.8 * wavelength`` (:func:`spyketorch_gabor_params`).

    Returns:
        Tensor ``(len(orientations), 1, window, window)``.
    """
    if len(orientations) == 0:
        raise ValueError("orientations must not be empty, got orientations=()")
    if wavelength is None:
        wavelength = spyketorch_gabor_params(window)[0]
    if sigma is None:
        sigma = 0.8 * wavelength
    kernels = [
        gabor_kernel(window, float(o) + offset_deg, wavelength, sigma, gamma=gamma, dtype=dtype)
        for o in orientations
    ]
    return torch.stack(kernels).unsqueeze(1)
