"""Orthonormal 2-D DCT-II as matrix products, its log normalisations and LeukoNet's energy mask.

The DCT is written as ``T_H @ x @ T_W^T`` with precomputable DCT-II matrices (as the released
SDCT-AuxNet-theta code does with a 350 x 350 matrix): matrix products export to ONNX and
TorchScript, ``torch.fft`` does not. On the CPU :func:`dct2_fft` computes the same transform
with scipy's FFT-based DCT (O(n^2 log n) per map instead of O(n^3); about 4x faster at 350 x 350)
and is differentiable: the orthonormal DCT-II is an orthogonal map, so its backward pass is the
inverse transform (DCT-III) of the incoming gradient. The DCT layers use it when they are not
being exported; the matrix form stays the reference and the export path.

References:
    Gehlot et al. 2020 (SDCT-AuxNet-theta), section 3.3, equation 1: ``D = log10(1 + |DCT(Z)|)``;
    the released code uses the signed form ``sign(DCT) * log10(1 + |DCT|)``.
    Mourya et al. 2018 (LeukoNet), section 4: DCT with an energy threshold of 95 %.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["dct_matrix", "dct2", "dct2_fft", "dct2_torch_fft", "dct2_prefolded", "fold_order", "log_magnitude", "energy_threshold_mask"]

_LOG10_E = 1.0 / math.log(10.0)
_LN10 = math.log(10.0)


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Orthonormal DCT-II matrix ``T`` (n x n): ``T[k, i] = a_k cos(pi (2i + 1) k / (2n))``.

    ``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)`` otherwise, so ``T @ T.T = I`` and ``T @ v`` equals
    ``scipy.fft.dct(v, type=2, norm="ortho")``. Computed in float64, then cast to ``dtype``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got n={n}")
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    t = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    t[0] = math.sqrt(1.0 / n)
    return t.to(dtype=dtype, device=device)


def dct2(x: Tensor, t_h: Tensor | None = None, t_w: Tensor | None = None) -> Tensor:
    """Orthonormal 2-D DCT-II over the last two dimensions: ``T_H @ x @ T_W^T``.

    Args:
        x: float tensor ``... x H x W`` (any leading batch/channel dimensions).
        t_h, t_w: optional precomputed :func:`dct_matrix` of sizes H and W (built when omitted).

    Returns:
        Tensor of ``x``'s shape; equals ``scipy.fft.dctn(x, axes=(-2, -1), norm="ortho")``.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions, got shape={tuple(x.shape)}")
    h, w = x.shape[-2:]
    if t_h is None:
        t_h = dct_matrix(h, x.dtype, x.device)
    if t_w is None:
        t_w = dct_matrix(w, x.dtype, x.device)
    if t_h.shape != (h, h) or t_w.shape != (w, w):
        raise ValueError(
            f"DCT matrices must be {h}x{h} and {w}x{w} for input {h}x{w}, "
            f"got t_h={tuple(t_h.shape)} t_w={tuple(t_w.shape)}"
        )
    if h % 2 == 0 and w % 2 == 0:
        return _dct2_even_odd(x, t_h, t_w)
    return t_h @ x @ t_w.transpose(0, 1)


def _dct2_even_odd(x: Tensor, t_h: Tensor, t_w: Tensor) -> Tensor:
    """``T_H x T_W^T`` for even H and W with half the multiply-adds (same values up to rounding).

    Row ``k`` of a DCT-II matrix is even about the centre for even ``k`` and odd for odd ``k``:
    ``T[k, n - 1 - i] = (-1)^k T[k, i]``. So along an axis of even length ``n = 2m`` the even
    outputs are ``T[0::2, :m] (x_head + reversed x_tail)`` and the odd outputs
    ``T[1::2, :m] (x_head - reversed x_tail)``: two m x m products instead of one n x n, then
    interleaved. Plain tensor ops (slice, flip, matmul, stack), so it exports to ONNX; the ONNX
    graph of an SDCT model at 350 x 350 runs about 12% faster with it.
    """
    h, w = x.shape[-2:]
    mh, mw = h // 2, w // 2
    head, tail = x[..., :mw], torch.flip(x[..., mw:], dims=[-1])
    along_w = torch.stack([(head + tail) @ t_w[0::2, :mw].transpose(0, 1),
                           (head - tail) @ t_w[1::2, :mw].transpose(0, 1)], dim=-1).reshape(x.shape)
    head, tail = along_w[..., :mh, :], torch.flip(along_w[..., mh:, :], dims=[-2])
    return torch.stack([t_h[0::2, :mh] @ (head + tail), t_h[1::2, :mh] @ (head - tail)], dim=-2).reshape(x.shape)


def fold_order(n: int) -> np.ndarray:
    """The pixel order :func:`dct2_prefolded` wants along an axis of even length ``n = 2m``.

    ``[0, 1, ..., m - 1, n - 1, n - 2, ..., m]``: the first half, then the second half reversed,
    so that the even/odd split of :func:`dct2` needs contiguous halves instead of a flip.
    Pixels are reordered before any per-pixel step (optical density, stain mixing, tanh), which
    commutes with the reordering; the ONNX path does it on the uint8 image for free.
    """
    if n < 2 or n % 2:
        raise ValueError(f"fold_order needs an even length >= 2, got n={n}")
    m = n // 2
    return np.concatenate([np.arange(m), np.arange(n - 1, m - 1, -1)])


def dct2_prefolded(x: Tensor, t_h: Tensor, t_w: Tensor) -> Tensor:
    """:func:`dct2` of maps whose rows and columns arrive in :func:`fold_order` (even H and W).

    Returns the coefficients in their natural order, equal to ``dct2(x[..., r, :][..., c])``
    with ``r, c`` the inverse of the fold order. Same products as the even/odd split of
    :func:`_dct2_even_odd`, but the halves are contiguous slices, so no flip is computed
    (measured: about a third fewer memory passes in onnxruntime, where a flip is a strided copy).
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"dct2_prefolded needs even H and W, got {h}x{w}")
    if t_h.shape != (h, h) or t_w.shape != (w, w):
        raise ValueError(f"DCT matrices must be {h}x{h} and {w}x{w}, got t_h={tuple(t_h.shape)} t_w={tuple(t_w.shape)}")
    mh, mw = h // 2, w // 2
    left, right = x[..., :mw], x[..., mw:]
    along_w = torch.stack([(left + right) @ t_w[0::2, :mw].transpose(0, 1),
                           (left - right) @ t_w[1::2, :mw].transpose(0, 1)], dim=-1).reshape(x.shape)
    top, bottom = along_w[..., :mh, :], along_w[..., mh:, :]
    return torch.stack([t_h[0::2, :mh] @ (top + bottom), t_h[1::2, :mh] @ (top - bottom)], dim=-2).reshape(x.shape)


def _scipy_dct2(x: Tensor, inverse: bool) -> Tensor:
    """Orthonormal 2-D DCT-II (or its inverse) of the last two dimensions with ``scipy.fft``.

    A channels-last ``B x C x H x W`` tensor is transformed in its own memory order (the NHWC
    array along axes 1 and 2) so the result keeps the channels-last layout the next conv wants.
    """
    import scipy.fft

    fn = scipy.fft.idctn if inverse else scipy.fft.dctn
    workers = max(1, torch.get_num_threads())
    if x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
        nhwc = x.detach().permute(0, 2, 3, 1).numpy()
        out = fn(nhwc, type=2, norm="ortho", axes=(1, 2), workers=workers)
        return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2)
    out = fn(x.detach().contiguous().numpy(), type=2, norm="ortho", axes=(-2, -1), workers=workers)
    return torch.from_numpy(np.ascontiguousarray(out))


class _FFTDCT2(torch.autograd.Function):
    """y = T_H x T_W^T by FFT; T is orthogonal, so dL/dx = T_H^T g T_W = IDCT(g)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return _scipy_dct2(x, inverse=False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        return _scipy_dct2(grad, inverse=True)


def dct2_fft(x: Tensor) -> Tensor:
    """:func:`dct2` computed with scipy's FFT-based DCT; CPU float32/float64 only, differentiable.

    Equals ``dct2(x)`` up to floating-point rounding (about 1e-6 relative to the largest
    coefficient in float32; tested). Not exportable: exporters and non-CPU devices use :func:`dct2`.

    Args:
        x: CPU float tensor ``... x H x W``.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions, got shape={tuple(x.shape)}")
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dct2_fft needs a CPU float32/float64 tensor, got device={x.device} dtype={x.dtype}")
    return _FFTDCT2.apply(x)


def _dct_last_fft(x: Tensor) -> Tensor:
    """Orthonormal DCT-II of the last dimension by one complex FFT of the reordered signal
    (Makhoul 1980: even samples, then the odd ones reversed; ``X_k = Re(e^{-i pi k / 2N} V_k)``)."""
    n = x.shape[-1]
    v = torch.cat([x[..., 0::2], x[..., 1::2].flip(-1)], dim=-1)
    k = torch.arange(n, device=x.device, dtype=x.dtype)
    twiddle = torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))
    out = (torch.fft.fft(v, dim=-1) * twiddle).real
    scale = torch.full((n,), math.sqrt(2.0 / n), device=x.device, dtype=x.dtype)
    scale[0] = math.sqrt(1.0 / n)
    return out * scale


def dct2_torch_fft(x: Tensor) -> Tensor:
    """:func:`dct2` by ``torch.fft`` on any device (the GPU's FFT path; autograd differentiates it).

    Equals ``dct2(x)`` up to float rounding (tested against scipy's ``dctn``). Half-precision
    input is computed in float32 (cuFFT's half transforms need power-of-two sizes) and returned
    in float32.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions, got shape={tuple(x.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return _dct_last_fft(_dct_last_fft(x).transpose(-1, -2)).transpose(-1, -2)


class _LogMagnitude(torch.autograd.Function):
    """Forward and backward of :func:`log_magnitude` in few memory passes (in-place where safe).

    Gradient: ``log10(e) / (1 + |d|)``, times ``sign(d)`` for the unsigned form (0 at ``d == 0``,
    as autograd gives for ``abs``). The signed form ``sign(d) log10(1 + |d|)`` is smooth at 0 with
    slope ``log10(e)``, which is what is returned there; autograd of the composed expression gives
    0 at exactly ``d == 0`` (``sign'(0) = 0``), a difference only for coefficients that are exactly
    zero. The signed form keeps ``ln(10) (1 + |d|)`` for its backward, which is then one division.
    """

    @staticmethod
    def forward(ctx, d: Tensor, signed: bool) -> Tensor:
        magnitude = d.abs()
        y = torch.log1p(magnitude).mul_(_LOG10_E)
        if signed:  # keep ln(10) (1 + |d|), the whole backward but one division
            ctx.save_for_backward(magnitude.mul_(_LN10).add_(_LN10))
        else:
            ctx.save_for_backward(d)
        ctx.signed = signed
        return y.copysign_(d) if signed else y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (saved,) = ctx.saved_tensors
        if ctx.signed:  # grad / (ln(10) (1 + |d|))
            return torch.div(grad, saved), None
        scale = saved.abs().add_(1.0).reciprocal_().mul_(_LOG10_E)
        return scale.mul_(torch.sign(saved)).mul_(grad), None


def log_magnitude(d: Tensor, signed: bool) -> Tensor:
    """``log10(1 + |d|)`` (SDCT paper, eq. 1) or ``sign(d) * log10(1 + |d|)`` (released code).

    Both are 0 at 0 and finite everywhere; the unsigned form is >= 0, the signed form keeps the
    sign of the coefficient and is odd. Computed as ``log1p(|d|) * log10(e)`` (with the sign
    copied for the signed form) in a fused autograd function; the gradient equals autograd's
    for the composed expression except at exactly ``d == 0`` in the signed form, where it is the
    true slope ``log10(e)`` instead of autograd's 0. Exporters see the plain composed expression.
    """
    if _exporting() or not d.is_floating_point():
        magnitude = torch.log1p(d.abs()) / math.log(10.0)
        return torch.sign(d) * magnitude if signed else magnitude
    return _LogMagnitude.apply(d, signed)


def _exporting() -> bool:
    """True while tracing, scripting, exporting or compiling: only plain tensor ops then."""
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    )


@torch.no_grad()
def energy_threshold_mask(d: Tensor, energy: float = 0.95) -> Tensor:
    """Fewest coefficients holding at least ``energy`` of each map's energy (LeukoNet, sec. 4).

    Per map (every index of the leading dimensions, i.e. per image and channel) the squared
    magnitudes over the last two dimensions are sorted in descending order and the smallest
    ``k`` is kept such that the cumulative sum of the ``k`` largest is ``>= energy * total``.
    Sums are accumulated in float64 and ``total`` is the last cumulative sum, so ``energy=1``
    keeps exactly the non-zero coefficients.

    Ties: exactly ``k`` coefficients are kept; among equal magnitudes at the cut those earlier
    in row-major order are kept (the result of a stable descending sort, computed without one
    so that it exports to ONNX). A map with zero total energy keeps nothing.

    Args:
        d: real tensor ``... x H x W`` (DCT coefficients).
        energy: fraction in (0, 1].

    Returns:
        bool tensor of ``d``'s shape, True where a coefficient is kept.
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got energy={energy}")
    if d.dim() < 2:
        raise ValueError(f"d must have at least 2 dimensions, got shape={tuple(d.shape)}")
    flat = d.detach().flatten(-2).to(torch.float64).square()
    sorted_e = torch.sort(flat, dim=-1, descending=True).values
    cumulative = torch.cumsum(sorted_e, dim=-1)
    total = cumulative[..., -1:]
    k = (cumulative < energy * total).sum(dim=-1, keepdim=True) + 1
    k = torch.where(total > 0, k, torch.zeros_like(k))
    # Ties at the cut are resolved in row-major order without relying on a stable sort (which
    # does not export to ONNX): keep everything above the k-th value, then the first equal ones.
    kth = sorted_e.gather(-1, (k - 1).clamp_min(0))
    above = flat > kth
    equal = flat == kth
    room = k - above.sum(dim=-1, keepdim=True)
    mask = above | (equal & (torch.cumsum(equal.to(torch.int64), dim=-1) <= room))
    return (mask & (k > 0)).reshape(d.shape)
