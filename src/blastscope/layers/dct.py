"""DCT layers: SDCT-Net's log-DCT layer and LeukoNet's energy-thresholded DCT.

Both compute the orthonormal 2-D DCT-II of every channel. The reference form is two matrix
products (:func:`blastscope.ops.dct.dct2`) with the DCT matrices held as non-persistent buffers:
they follow ``.to(device)``, are rebuilt rather than stored in checkpoints, and export to ONNX.
On the CPU, outside export/tracing, the same transform is computed by scipy's FFT-based DCT
(:func:`blastscope.ops.dct.dct2_fft`, differentiable, about 4x faster at 350 x 350 and equal to
the matrix form up to float rounding); ``backend="matrix"`` forces the matrix form. On a GPU,
``auto`` keeps the matrix products and ``backend="fft"`` computes it with ``torch.fft``
(:func:`blastscope.ops.dct.dct2_torch_fft`); ``blastscope bench --only gpu`` measures both.
"""
from __future__ import annotations

import math

from typing import Literal

import torch
from torch import Tensor, nn

from blastscope.ops.dct import (
    _exporting,
    dct2,
    dct2_fft,
    dct2_prefolded,
    dct2_torch_fft,
    dct_matrix,
    energy_threshold_mask,
    log_magnitude,
)

__all__ = ["DCT2d", "EnergyThresholdDCT"]

DCTOutput = Literal["log_abs", "signed_log", "none"]
_OUTPUTS = ("log_abs", "signed_log", "none")
DCTBackend = Literal["auto", "matrix", "fft"]
_BACKENDS = ("auto", "matrix", "fft")


def _as_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got size={size}")
    return int(h), int(w)


class _DCTMatrices(nn.Module):
    """Holds DCT matrices for a fixed size, or builds them lazily for the input's size."""

    def __init__(self, size: int | tuple[int, int] | None, backend: DCTBackend = "auto") -> None:
        super().__init__()
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got backend={backend!r}")
        self.backend = backend
        self.size = _as_size(size)
        t_h, t_w = (dct_matrix(self.size[0]), dct_matrix(self.size[1])) if self.size else (None, None)
        self.register_buffer("t_h", t_h, persistent=False)
        self.register_buffer("t_w", t_w, persistent=False)
        # dtype/device the matrices were computed for; after .double() or .to() they are rebuilt
        # from float64 cosines on the next call instead of being used as cast copies
        self._built_for: tuple[torch.dtype, torch.device] | None = None
        if self.size is not None:
            self._built_for = (torch.float32, torch.device("cpu"))

    def _matrices(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 4:
            raise ValueError(f"expected B x C x H x W input, got shape={tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.size is not None and (h, w) != self.size:
            raise ValueError(f"layer built for size={self.size}, got input of {h}x{w}")
        stale = self._built_for != (x.dtype, x.device)
        if stale or self.t_h is None or self.t_h.shape[0] != h:
            self.t_h = dct_matrix(h, x.dtype, x.device)
        if stale or self.t_w is None or self.t_w.shape[0] != w:
            self.t_w = dct_matrix(w, x.dtype, x.device)
        self._built_for = (x.dtype, x.device)
        return self.t_h, self.t_w

    def dct(self, x: Tensor) -> Tensor:
        t_h, t_w = self._matrices(x)
        # the matrices are kept up to date on the FFT path too, ready for export
        if not self._use_fft(x):
            return dct2(x, t_h, t_w)
        return dct2_fft(x) if x.device.type == "cpu" else dct2_torch_fft(x)

    def dct_prefolded(self, x: Tensor) -> Tensor:
        """The DCT of maps whose rows and columns are in :func:`~blastscope.ops.dct.fold_order`
        (even sizes), in natural coefficient order: the ONNX graph's form (see
        :mod:`blastscope.inference.onnx_export`)."""
        t_h, t_w = self._matrices(x)
        return dct2_prefolded(x, t_h, t_w)

    def _use_fft(self, x: Tensor) -> bool:
        if self.backend == "matrix" or _exporting():
            return False
        cpu_float = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
        if self.backend == "fft" and x.device.type == "cpu" and not cpu_float:
            raise ValueError(f"backend='fft' needs float32/float64 input on the CPU, got dtype={x.dtype}")
        return cpu_float or (self.backend == "fft" and x.device.type != "cpu")


class DCT2d(_DCTMatrices):
    """Per-channel orthonormal 2-D DCT-II with a log normalisation (SDCT-Net's DCT layer).

    Gehlot et al. 2020, section 3.3, equation 1: ``D_j = log10(1 + |DCT(Z_j)|)`` for each of the
    three SD-layer maps ``Z_j`` (``output="log_abs"``). The authors' released code instead uses
    ``sign(DCT) * log10(1 + |DCT|)`` (``output="signed_log"``); ``"none"`` returns the raw
    coefficients. Registered entrypoints state which one they use.

    Args:
        size: input H (= W) or (H, W); None builds the matrices lazily for each input size
            (e.g. 350 for C-NMC crops) and rebuilds them when size, dtype or device change.
        output: "log_abs", "signed_log" or "none".
        backend: "auto" (FFT on CPU unless exporting, else matrices), "matrix" or "fft".

    Shape: B x C x H x W -> B x C x H x W; "log_abs" >= 0, the others real.
    """

    def __init__(self, size: int | tuple[int, int] | None = None, output: DCTOutput = "log_abs",
                 backend: DCTBackend = "auto") -> None:
        super().__init__(size, backend)
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got output={output!r}")
        self.output = output

    def forward(self, x: Tensor, prefolded: bool = False) -> Tensor:
        """``prefolded``: ``x``'s rows and columns are in fold order (see :meth:`dct_prefolded`)."""
        d = self.dct_prefolded(x) if prefolded else self.dct(x)
        if self.output == "none":
            return d
        return log_magnitude(d, signed=self.output == "signed_log")

    def extra_repr(self) -> str:
        return f"size={self.size}, output={self.output!r}, backend={self.backend!r}"


class EnergyThresholdDCT(_DCTMatrices):
    """LeukoNet's DCT layer: energy-thresholded 2-D DCT, then a sign-keeping log10.

    Mourya et al. 2018, section 4 (Stage-2): "Two-dimensional DCT was applied on the output of
    the SD Layer with energy threshold of 95% reducing the values below the threshold to 1. We
    further log-normalized the output using log10, while maintaining the sign of the DCT
    coefficients." Implemented per image and channel as

        keep = energy_threshold_mask(d, energy)        # fewest coefficients with >= 95 % energy
        out  = sign(d) * log10(max(|d|, eps))  where keep,   0 elsewhere

    i.e. a dropped coefficient is replaced by 1 and ``log10(1) = 0``. No code was released; our
    reading of the wording: the log has no ``1 +`` (otherwise replacing by 1 would not zero a
    coefficient), so a KEPT coefficient with ``|d| < 1`` maps to a value of the opposite sign
    (e.g. 0.5 -> -0.30; about a third of the kept coefficients of a synthetic cell), a property
    of the stated formula which ``log="literal"`` (default, the LeukoNet recipes) keeps so that the
    recipes are faithful to the paper's text. ``log="monotone"`` is the order-preserving
    ``sign(d) * log10(1 + |d|)`` on kept coefficients (0 on dropped ones, which ``log10(1 + 0)``
    gives too): no sign inversion, at the price of departing from the paper's wording. ``eps``
    (default 1e-6) only guards the literal log against a kept coefficient of (near) zero. The mask
    is not differentiated; gradients flow through the kept coefficients.

    Args:
        energy: fraction of energy kept per map, in (0, 1]; the paper uses 0.95.
        log: "literal" (the paper's wording) or "monotone" (see above).
        size: as for :class:`DCT2d`.
        eps: floor of ``|d|`` inside the log, > 0.
        backend: as for :class:`DCT2d`.

    Shape: B x C x H x W -> B x C x H x W.
    """

    def __init__(self, energy: float = 0.95, size: int | tuple[int, int] | None = None, eps: float = 1e-6,
                 backend: DCTBackend = "auto", log: Literal["literal", "monotone"] = "literal") -> None:
        super().__init__(size, backend)
        if log not in ("literal", "monotone"):
            raise ValueError(f"log must be 'literal' or 'monotone', got log={log!r}")
        self.log = log
        if not 0.0 < energy <= 1.0:
            raise ValueError(f"energy must be in (0, 1], got energy={energy}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got eps={eps}")
        self.energy = energy
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        d = self.dct(x)
        keep = energy_threshold_mask(d, self.energy)
        if self.log == "monotone":
            return torch.where(keep, torch.sign(d) * torch.log1p(d.abs()) / math.log(10.0), torch.zeros_like(d))
        kept = torch.where(keep, d, torch.ones_like(d))
        return torch.sign(kept) * torch.log10(kept.abs().clamp_min(self.eps))

    def extra_repr(self) -> str:
        return f"energy={self.energy}, size={self.size}, log={self.log}"
