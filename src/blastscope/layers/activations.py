"""Activations compared in LeukoNet: ReLU, PReLU and P-TELU.

Mourya et al. 2018, section 5 and Table 1 ("Stage-1 PRelu/PTelu w/ aug", "Stage-2C PRelu/PTelu
w/o aug"; ReLU is the default and performed best). PReLU: He et al. 2015 (one slope per channel,
``torch.nn.PReLU``). P-TELU, cited in LeukoNet as "Gupta et al. [14]": R. Duggal and A. Gupta,
"P-TELU: Parametric Tan Hyperbolic Linear Unit Activation for Deep Neural Networks",
ICCV Workshops 2017:

    f(x) = x                      for x >= 0
    f(x) = alpha * tanh(beta * x) for x <  0,   alpha, beta >= 0 learnable

No LeukoNet code was released. Our choices: one (alpha, beta) pair per channel (like PReLU),
both initialised to 1, and the constraint enforced by using ``|alpha|`` and ``|beta|`` in the
forward pass (a reflection at 0 rather than a clamp, so a parameter that crosses 0 keeps
receiving gradient instead of freezing at the ReLU limit).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["PTELU", "make_activation", "ActivationName"]

ActivationName = Literal["relu", "prelu", "ptelu"]
_NAMES = ("relu", "prelu", "ptelu")


class PTELU(nn.Module):
    """Parametric tan-hyperbolic linear unit, per channel (Duggal & Gupta 2017).

    Args:
        num_parameters: number of channels (dimension 1 of the input); 1 shares one pair.
        init_alpha, init_beta: initial values, >= 0.

    Shape: B x C x ... -> same shape; output >= -alpha for negative inputs.
    """

    def __init__(self, num_parameters: int = 1, init_alpha: float = 1.0, init_beta: float = 1.0) -> None:
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"num_parameters must be >= 1, got num_parameters={num_parameters}")
        if init_alpha < 0 or init_beta < 0:
            raise ValueError(f"init_alpha and init_beta must be >= 0, got {init_alpha=} {init_beta=}")
        self.num_parameters = num_parameters
        self.alpha = nn.Parameter(torch.full((num_parameters,), float(init_alpha)))
        self.beta = nn.Parameter(torch.full((num_parameters,), float(init_beta)))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or (self.num_parameters != 1 and x.shape[1] != self.num_parameters):
            raise ValueError(f"expected B x {self.num_parameters} x ... input, got shape={tuple(x.shape)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        alpha = self.alpha.abs().reshape(shape)
        beta = self.beta.abs().reshape(shape)
        return torch.where(x >= 0, x, alpha * torch.tanh(beta * x))

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


def make_activation(name: ActivationName, channels: int, inplace: bool = False) -> nn.Module:
    """``nn.ReLU(inplace)``, ``nn.PReLU(channels)`` (slopes start at 0.25) or ``PTELU(channels)``.

    ``inplace`` applies to ReLU only (safe after BatchNorm, whose backward does not need its
    output; saves one tensor per block).
    """
    if name not in _NAMES:
        raise ValueError(f"activation must be one of {_NAMES}, got activation={name!r}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got channels={channels}")
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "prelu":
        return nn.PReLU(num_parameters=channels)
    return PTELU(num_parameters=channels)
