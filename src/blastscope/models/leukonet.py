"""LeukoNet (Mourya et al. 2018): Stage-1, Stage-2, Stage-2C, Stage-3/3C fusion and OD + VGG-11.

Mourya et al. 2018, "LeukoNet" (DCT-based CNN for normal versus leukemic blasts in B-ALL),
sections 4-5, Fig. 1, Tables 1-2.
No code was released; every reading of the text is stated where it is used.

- Stage-1: SD layer + Basic Network (:class:`~blastscope.models.base_network.BasicNetwork`).
- Stage-2: SD layer -> energy-thresholded DCT (95 %) with a sign-keeping log10 -> Basic Network.
- Stage-2C: the 3 SD channels concatenated with their 3 DCT channels -> 6-channel Basic Network.
- Stage-3 / 3C: features of a trained Stage-1 and a trained Stage-2 / 2C model, concatenated and
  fed to one new fully connected layer; only that layer is trained.
- "OD w/ VGG 11" (Table 1, section 5): optical density input to VGG-11 with global average pooling.

The SD layer is the one of SDCT-AuxNet-theta's released code (same group): inverse stain matrix
as 1x1 conv weight, then tanh. Activation ("relu", "prelu", "ptelu") is a keyword of every stage
entrypoint (Table 1 compares them; ReLU is the default and was best). Models return logits.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from blastscope.layers.activations import ActivationName
from blastscope.layers.dct import EnergyThresholdDCT
from blastscope.layers.stain_deconvolution import OpticalDensity, StainDeconvolution
from blastscope.models._registry import register_model
from blastscope.models.base_network import BasicNetwork, ConvBNAct
from blastscope.models.sdct import FrontEndNet

__all__ = [
    "ChannelConcat", "VGG", "FusionNet", "leukonet_stage1", "leukonet_stage2", "leukonet_stage2c",
    "leukonet_stage3", "leukonet_stage3c", "leukonet_vgg11_od",
]

_PAPER = "Mourya et al. 2018 (LeukoNet)"
_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class ChannelConcat(nn.Module):
    """Concatenate the outputs of several branches on the channel axis (B x sum(C_i) x H x W)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        if len(branches) < 2:
            raise ValueError(f"need at least 2 branches, got {len(branches)}")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class VGG(nn.Module):
    """VGG conv stack with BatchNorm (Simonyan & Zisserman 2015) and a global-average-pool head.

    LeukoNet section 5 describes VGG-11 ending in global average pooling; we use the VGG-11
    ("A") conv configuration with BN, GAP and one linear layer (no 4096-wide FC layers), He init.

    Args:
        cfg: conv widths, "M" for a 2x2 max-pool.
        in_channels, num_classes, activation: as for ``BasicNetwork``.

    Shape: B x in_channels x H x W (H, W >= 32 with five pools) -> B x num_classes;
    ``num_features`` = last conv width (512).
    """

    def __init__(
        self,
        cfg: Sequence[int | str] = _VGG11,
        in_channels: int = 3,
        num_classes: int = 2,
        activation: ActivationName = "relu",
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels=} {num_classes=}")
        widths = [c for c in cfg if c != "M"]
        if not widths or any(not isinstance(c, int) or c < 1 for c in widths):
            raise ValueError(f"cfg must hold positive ints and 'M', got cfg={list(cfg)}")
        layers: list[nn.Module] = []
        channels = in_channels
        for c in cfg:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(ConvBNAct(channels, c, 3, padding=1, activation=activation))
                channels = c
        self.features = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class FusionNet(nn.Module):
    """Stage-3/3C hybrid: two frozen models' pre-logit vectors -> one new linear layer.

    LeukoNet section 4: "we extracted features from both and trained a single Fully Connected
    (FC) Layer". The features are each model's ``forward_head(forward_features(x),
    pre_logits=True)`` (the bilinear vectors for Basic Networks, 4096 + 4096). Both sub-models
    are frozen: ``requires_grad=False`` and kept in eval mode by :meth:`train`, so neither their
    weights nor their BatchNorm statistics change.

    Shape: B x 3 x H x W -> B x num_classes; ``forward_features`` returns the concatenated
    B x num_features vector (``num_features = first.num_features + second.num_features``).
    """

    def __init__(self, first: nn.Module, second: nn.Module, num_classes: int = 2) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got num_classes={num_classes}")
        for name, model in (("first", first), ("second", second)):
            if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "num_features")):
                raise ValueError(f"{name} must be a timm-style model, got {type(model).__name__}")
        self.first = first.requires_grad_(False).eval()
        self.second = second.requires_grad_(False).eval()
        self.num_classes = num_classes
        self.num_features = int(first.num_features) + int(second.num_features)
        self.fc = nn.Linear(self.num_features, num_classes)

    def train(self, mode: bool = True) -> "FusionNet":
        super().train(mode)
        self.first.eval()
        self.second.eval()
        return self

    def forward_features(self, x: Tensor) -> Tensor:
        parts = [m.forward_head(m.forward_features(x), pre_logits=True) for m in (self.first, self.second)]
        return torch.cat(parts, dim=1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _sd(stain_matrix: np.ndarray | None) -> StainDeconvolution:
    return StainDeconvolution(stain_matrix=stain_matrix, trainable=True, tanh=True)


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 4 (Stage-1), Tables 1-2")
def leukonet_stage1(
    *, num_classes: int = 2, stain_matrix: np.ndarray | None = None, activation: ActivationName = "relu"
) -> nn.Module:
    """Stage-1: SD layer + Basic Network (``stain_matrix`` None = Ruifrok-Johnston default)."""
    return FrontEndNet(_sd(stain_matrix), BasicNetwork(3, num_classes, activation=activation))


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 4 (Stage-2), Table 2")
def leukonet_stage2(
    *,
    num_classes: int = 2,
    stain_matrix: np.ndarray | None = None,
    activation: ActivationName = "relu",
    energy: float = 0.95,
    dct_log: Literal["literal", "monotone"] = "literal",
) -> nn.Module:
    """Stage-2: SD layer -> EnergyThresholdDCT(energy, log=dct_log) -> Basic Network.

    ``dct_log="literal"`` (default) is the paper's wording, which flips the sign of kept
    coefficients with ``|d| < 1``; ``"monotone"`` is ``sign(d) log10(1 + |d|)``
    (:class:`~blastscope.layers.dct.EnergyThresholdDCT`)."""
    front = nn.Sequential(_sd(stain_matrix), EnergyThresholdDCT(energy=energy, log=dct_log))
    return FrontEndNet(front, BasicNetwork(3, num_classes, activation=activation))


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 4 (Stage-2C), Tables 1-2")
def leukonet_stage2c(
    *,
    num_classes: int = 2,
    stain_matrix: np.ndarray | None = None,
    activation: ActivationName = "relu",
    energy: float = 0.95,
    dct_log: Literal["literal", "monotone"] = "literal",
) -> nn.Module:
    """Stage-2C: [SD channels, DCT(SD) channels] (6 channels) -> 6-channel Basic Network.

    Reading of the text: one SD layer feeds both halves (SD channels first, then their
    energy-thresholded DCT), rather than two separately trained SD layers. ``dct_log``: as for
    :func:`leukonet_stage2`.
    """
    sd_then_concat = nn.Sequential(
        _sd(stain_matrix), ChannelConcat(nn.Identity(), EnergyThresholdDCT(energy=energy, log=dct_log))
    )
    return FrontEndNet(sd_then_concat, BasicNetwork(6, num_classes, activation=activation))


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 5, Table 1 (OD w/ VGG 11)")
def leukonet_vgg11_od(*, num_classes: int = 2, activation: ActivationName = "relu") -> nn.Module:
    """Optical-density input -> VGG-11 (BN) conv stack -> global average pooling -> linear.

    Table 1 names the input "OD"; section 5 says the SD layer was combined with VGG-11. We
    follow the table (parameter-free OD); for the SD variant use ``FrontEndNet(StainDeconvolution(), VGG())``.
    """
    return FrontEndNet(OpticalDensity(), VGG(_VGG11, 3, num_classes, activation=activation))


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 4-5 (Stage-3), Table 2")
def leukonet_stage3(
    *,
    num_classes: int = 2,
    first: nn.Module | None = None,
    second: nn.Module | None = None,
    stain_matrix: np.ndarray | None = None,
    activation: ActivationName = "relu",
) -> nn.Module:
    """Stage-3: FusionNet of a Stage-1 (``first``) and a Stage-2 (``second``) model.

    Pass the trained sub-models as ``first=``/``second=``; missing ones are built fresh with
    ``stain_matrix`` and ``activation`` (only useful for shape checks: they are frozen).
    """
    first = first if first is not None else leukonet_stage1(stain_matrix=stain_matrix, activation=activation)
    second = second if second is not None else leukonet_stage2(stain_matrix=stain_matrix, activation=activation)
    return FusionNet(first, second, num_classes=num_classes)


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 4-5 (Stage-3C), Table 2")
def leukonet_stage3c(
    *,
    num_classes: int = 2,
    first: nn.Module | None = None,
    second: nn.Module | None = None,
    stain_matrix: np.ndarray | None = None,
    activation: ActivationName = "relu",
) -> nn.Module:
    """Stage-3C: FusionNet of a Stage-1 (``first``) and a Stage-2C (``second``) model.

    The paper's best test-set configuration ("Stage-3C w/ aug"). Sub-model handling as for
    :func:`leukonet_stage3`.
    """
    first = first if first is not None else leukonet_stage1(stain_matrix=stain_matrix, activation=activation)
    second = second if second is not None else leukonet_stage2c(stain_matrix=stain_matrix, activation=activation)
    return FusionNet(first, second, num_classes=num_classes)
