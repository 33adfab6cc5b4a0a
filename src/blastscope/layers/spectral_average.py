"""Spectral averaging: mean over feature maps at every spatial position.

Gehlot et al. 2020, section 3.4 (Fig. 6, eq. 6 ``phi``): the auxiliary classifier of
SDCT-AuxNet-theta reads the last conv block's maps (64 x 10 x 10 at 350 x 350 input) after
"averaging across all feature maps at every pixel position", i.e. 100 features.

Released code differs: it reshapes the (64, 10, 10) array to (100, 64) and averages over the
last axis, which mixes channels and positions (each "feature" is the mean of 64 consecutive
entries of the channel-major buffer, i.e. parts of one or two channels). We implement the
paper's definition, the mean over the channel axis; features are not comparable with the
released code's. ``mode="released"`` reproduces the released code's features for the recipe
``sdct_auxnet_code``.
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

__all__ = ["SpectralAverage", "SpectralMode", "spectral_mode"]


def spectral_mode(model: nn.Module) -> str:
    """The spectral averaging a model's auxiliary SVM reads (its ``spectral_mode``, default "paper")."""
    return getattr(model, "spectral_mode", "paper")


SpectralMode = Literal["paper", "released"]


class SpectralAverage(nn.Module):
    """Mean over channels at each position, flattened row-major (``mode="paper"``), or the released
    code's mean over consecutive runs of C entries of each cell's (C, H, W) buffer reshaped to
    (H*W, C) (``mode="released"``).

    Shape: B x C x H x W -> B x H*W (B x 64 x 10 x 10 -> B x 100); no parameters.
    """

    def __init__(self, mode: SpectralMode = "paper") -> None:
        super().__init__()
        if mode not in ("paper", "released"):
            raise ValueError(f"mode must be 'paper' or 'released', got mode={mode!r}")
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected B x C x H x W input, got shape={tuple(x.shape)}")
        if self.mode == "released":
            b, c, h, w = x.shape
            return x.reshape(b, h * w, c).mean(dim=2)
        return x.mean(dim=1).flatten(1)
