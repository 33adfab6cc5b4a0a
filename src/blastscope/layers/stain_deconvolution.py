"""Stain-deconvolution (SD) layer: RGB -> optical density -> stain quantities.

Duggal et al. 2017 (SD-layer), used by SD-Net and SDCT-Net (Gehlot et al. 2020, sections 3.2-3.3,
Figs. 3 and 5, Table 3 first row) and by LeukoNet Stage-1/2 (Mourya et al. 2018, section 4).

Released SDCT-AuxNet-theta code: RGB in [0, 1], exact zeros set to 1 (OD 0), ``OD = -log10(I)``,
a 1x1 convolution whose trainable 3 x 3 weight is the INVERSE stain matrix (initialised from a
Macenko estimate on one reference cell), then ``tanh``. Learning the inverse directly means the
forward pass needs no matrix inversion, so the layer exports to ONNX (which has no inverse op).

Differences: zeros are replaced element-wise (a zero in one channel gets OD 0 in that channel
only) and positive intensities are floored at ``eps=1e-6``
(see :func:`blastscope.ops.optical_density.optical_density`);
without a reference image the weight starts from the fixed Ruifrok-Johnston H&E-DAB matrix
(:func:`blastscope.ops.stain.default_stain_matrix`) instead of a Macenko estimate.

Speed (same maths, tested against the plain form): outside export the layer computes
``conv(ln I, -log10(e) * W)`` instead of ``conv(-log10 I, W)`` (one pass fewer, in place), works
in channels-last memory (a 1 x 1 convolution over 3 planar channels is several times slower)
and applies ``tanh`` in place on the convolution output.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blastscope.ops.dct import _exporting
from blastscope.ops.optical_density import log_intensity, optical_density
from blastscope.ops.stain import default_stain_matrix, inverse_stain_matrix, macenko_stain_matrix

__all__ = ["OpticalDensity", "StainDeconvolution"]


class OpticalDensity(nn.Module):
    """``-log10(I)`` with zeros treated as background (OD 0); no parameters.

    Shape: any, typically B x 3 x H x W with values in [0, 1]; output in [0, -log10(eps)].
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got eps={eps}")
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return optical_density(x, self.eps)


class StainDeconvolution(nn.Module):
    """RGB -> OD -> 1x1 conv with the inverse stain matrix as weight -> optional tanh.

    With stain matrix ``m`` (one unit stain vector per row, see :mod:`blastscope.ops.stain`) the
    weight is ``inverse_stain_matrix(m).T`` so that, at initialisation and without tanh or bias,
    output channel ``s`` is the concentration of stain ``s``: per pixel ``c = inv(m).T @ od``.
    This is 6 times scikit-image's ``separate_stains(rgb, inv(m))`` wherever that is positive:
    scikit-image computes ``ln(I) / ln(1e-6) = OD / 6``, clips the result at 0 and floors
    intensities (zeros included) at 1e-6, whereas zeros here mean OD 0.

    Args:
        stain_matrix: 3 x 3 stain matrix, rows = stains; None uses :func:`default_stain_matrix`.
        trainable: whether the weight (and bias) receive gradients.
        tanh: apply ``tanh`` to the output (released SDCT code: yes).
        bias: add a learnable per-stain bias (released code: no).
        eps: OD floor, see :func:`blastscope.ops.optical_density.optical_density`.
        dtype: parameter dtype (torch factory convention); float64 keeps the initial inverse exact.

    Shape: B x 3 x H x W RGB in [0, 1] -> B x 3 x H x W stain quantities (in (-1, 1) with tanh).
    """

    def __init__(
        self,
        stain_matrix: np.ndarray | None = None,
        trainable: bool = True,
        tanh: bool = True,
        bias: bool = False,
        eps: float = 1e-6,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        m = default_stain_matrix() if stain_matrix is None else np.asarray(stain_matrix, dtype=np.float64)
        inverse = inverse_stain_matrix(m)  # validates shape, finiteness, invertibility
        self.od = OpticalDensity(eps)
        self.conv = nn.Conv2d(3, 3, kernel_size=1, bias=bias, dtype=dtype)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(inverse.T.copy()).reshape(3, 3, 1, 1))
            if bias:
                self.conv.bias.zero_()
        self.conv.requires_grad_(trainable)
        self.apply_tanh = tanh

    @classmethod
    def from_reference_images(
        cls,
        images: np.ndarray | Sequence[np.ndarray],
        od_threshold: float = 0.15,
        percentile: float = 99.9,
        **kwargs,
    ) -> "StainDeconvolution":
        """Build with the weight initialised from :func:`macenko_stain_matrix` of ``images``.

        ``images``: one H x W x 3 RGB image or a sequence (uint8 or float in [0, 1]); the
        released SDCT code uses a single reference cell. Other kwargs go to the constructor.
        """
        matrix = macenko_stain_matrix(images, od_threshold=od_threshold, percentile=percentile)
        return cls(stain_matrix=matrix, **kwargs)

    @property
    def inverse_matrix(self) -> Tensor:
        """Current 3 x 3 inverse stain matrix in scikit-image's row convention (``weight.T``)."""
        return self.conv.weight.detach()[:, :, 0, 0].T

    def forward_od(self, od: Tensor) -> Tensor:
        """The layer applied to optical densities ``od`` (B x 3 x H x W, :class:`OpticalDensity`'s
        output) instead of RGB: the mixing as a product over the channel axis, then tanh. Same
        maths as :meth:`forward` after the OD step; the ONNX graph's form, where the OD comes from
        a 256-entry table of the uint8 pixels and a 1 x 1 convolution over 3 channels is slow."""
        if od.dim() != 4 or od.shape[1] != 3:
            raise ValueError(f"expected B x 3 x H x W optical densities, got shape={tuple(od.shape)}")
        b, _, h, w = od.shape
        y = (self.conv.weight[:, :, 0, 0] @ od.reshape(b, 3, h * w)).reshape(b, 3, h, w)
        if self.conv.bias is not None:
            y = y + self.conv.bias.reshape(1, 3, 1, 1)
        return torch.tanh(y) if self.apply_tanh else y

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected B x 3 x H x W RGB input, got shape={tuple(x.shape)}")
        if _exporting():
            y = self.conv(self.od(x))
            return torch.tanh(y) if self.apply_tanh else y
        x = x.contiguous(memory_format=torch.channels_last)
        weight = self.conv.weight * (-1.0 / math.log(10.0))
        y = F.conv2d(log_intensity(x, self.od.eps), weight, self.conv.bias)
        # the convolution's backward needs its input and weight, not its output: tanh may overwrite it
        return torch.tanh_(y) if self.apply_tanh else y
