"""Bilinear pooling of one feature map with itself (B-CNN, Lin et al. 2015).

Lin, RoyChowdhury & Maji, "Bilinear CNN models for fine-grained visual recognition", ICCV 2015:
sum over locations of the outer product of the feature vectors, signed square root, L2
normalisation. Used by SDCT-Net's base network (Gehlot et al. 2020, section 3.1 and Table 3,
"Bilinear Pooling 64 x 10 x 10 -> 4096") and LeukoNet's Basic Network (Mourya et al. 2018, sec. 4).

Released SDCT-AuxNet-theta code: ``X X^T`` over the 10 x 10 positions WITHOUT division by H*W,
then ``sign(x) * sqrt(|x| + 1e-5)`` and L2 normalisation; we do the same. The epsilon stays inside
the square root so the gradient is finite at 0 (after ReLU the features are non-negative and the
signed root equals the plain root). Difference from Lin et al.: no averaging over locations
(irrelevant after the L2 normalisation up to the epsilon).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BilinearPool"]


class BilinearPool(nn.Module):
    """``x -> normalize(sign(G) * sqrt(|G| + eps))`` with ``G = X X^T`` summed over positions.

    Args:
        eps: added inside the square root, > 0 (released code: 1e-5).

    Shape: B x C x H x W -> B x C*C (row-major flattening of the C x C Gram matrix), unit L2 norm.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got eps={eps}")
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected B x C x H x W input, got shape={tuple(x.shape)}")
        features = x.flatten(2)
        gram = torch.bmm(features, features.transpose(1, 2)).flatten(1)
        gram = torch.sign(gram) * torch.sqrt(gram.abs() + self.eps)
        return F.normalize(gram, p=2.0, dim=1)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
