"""Optical density (Beer-Lambert) of RGB intensities.

Used by the stain-deconvolution layer of SD-Net / SDCT-Net (Gehlot et al. 2020, section 3.2,
after Duggal et al. 2017) and LeukoNet (Mourya et al. 2018, section 4).

Released SDCT-AuxNet-theta code: input RGB in [0, 1]; exact-zero values (the black background
of C-NMC cells) are set to 1 so that their optical density is 0; ``OD = -log10(I)``.
We do the same, element-wise (a zero in one channel only is also set to 1), and additionally
clamp positive values below ``eps`` to ``eps`` so that no ``inf`` can appear (``eps=1e-6`` gives
at most ``OD = 6``, the same floor scikit-image's ``separate_stains`` uses; every 8-bit value
``k/255 >= 1/255`` is unaffected).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["optical_density", "log_intensity"]


def _check(rgb: Tensor, eps: float) -> None:
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got eps={eps}")
    if not rgb.is_floating_point():
        raise TypeError(f"rgb must be a floating-point tensor in [0, 1], got dtype={rgb.dtype}")


def _intensity(rgb: Tensor, eps: float) -> Tensor:
    """Exact zeros -> 1 (background), positive values floored at ``eps``; a new tensor."""
    return torch.where(rgb == 0, torch.ones_like(rgb), rgb).clamp_min(eps)


def optical_density(rgb: Tensor, eps: float = 1e-6) -> Tensor:
    """Optical density ``-log10(I)`` of intensities ``I`` in [0, 1].

    Args:
        rgb: float tensor of any shape, typically B x 3 x H x W, values in [0, 1].
        eps: smallest positive intensity used in the logarithm, in (0, 1).

    Returns:
        Tensor of ``rgb``'s shape and dtype, values in [0, -log10(eps)] for inputs in [0, 1];
        exact zeros map to 0 (treated as background, not as infinite absorbance).
        The gradient is 0 at exact zeros and at values below ``eps``.
    """
    _check(rgb, eps)
    return -torch.log10(_intensity(rgb, eps))


def log_intensity(rgb: Tensor, eps: float = 1e-6) -> Tensor:
    """Natural log of the intensity with the same background and floor rules as :func:`optical_density`.

    ``log_intensity(rgb) = -ln(10) * optical_density(rgb)`` (up to float rounding), in fewer memory
    passes: when no gradient is needed for ``rgb`` (image batches never need one) the floor and the
    logarithm run in place. The SD layer folds ``-log10(e)`` into its 1 x 1 convolution weight.

    Args:
        rgb: float tensor of any shape, values in [0, 1].
        eps: smallest positive intensity used in the logarithm, in (0, 1).

    Returns:
        Tensor of ``rgb``'s shape, dtype and memory format, values in [ln(eps), 0].
    """
    _check(rgb, eps)
    if rgb.requires_grad and torch.is_grad_enabled():
        return torch.log(_intensity(rgb, eps))
    return torch.where(rgb == 0, 1.0, rgb).clamp_min_(eps).log_()
