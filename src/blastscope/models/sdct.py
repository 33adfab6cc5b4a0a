"""SDCT-AuxNet-theta's CNNs: base network, SD-Net and SDCT-Net (Gehlot et al. 2020).

Gehlot, Gupta & Gupta, SDCT-AuxNet-theta, Medical Image Analysis 2020, sections 3.1-3.3,
Figs. 2, 3, 5, Tables 2-3. The auxiliary SVM (section 3.4) reads
``SpectralAverage()(model.forward_features(x))`` and lives in ``blastscope.estimators``.

All models take B x 3 x H x W RGB in [0, 1] (350 x 350 centre crops in the paper) and return
logits; the paper's log-softmax + NLL is ``cross_entropy`` on them.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from blastscope.layers.activations import ActivationName
from blastscope.layers.dct import DCT2d, DCTOutput
from blastscope.layers.spectral_average import SpectralMode
from blastscope.layers.stain_deconvolution import StainDeconvolution
from blastscope.models._registry import register_model
from blastscope.models.base_network import BasicNetwork, InitName

__all__ = ["FrontEndNet", "base_network", "sd_net", "sdct_net"]

_PAPER = "Gehlot, Gupta & Gupta 2020 (SDCT-AuxNet-theta), MedIA"


class FrontEndNet(nn.Module):
    """A preprocessing front end (stain/DCT layers) followed by a timm-style backbone.

    ``forward_features(x) = backbone.forward_features(front(x))``; the head, ``num_classes`` and
    ``num_features`` are the backbone's. The front's output channels must match the backbone's
    input channels.

    Args:
        front: module mapping B x 3 x H x W RGB in [0, 1] to the backbone's input.
        backbone: model with ``forward_features``/``forward_head``/``num_classes``/``num_features``.
    """

    def __init__(self, front: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        for attr in ("forward_features", "forward_head", "num_classes", "num_features"):
            if not hasattr(backbone, attr):
                raise ValueError(f"backbone must define {attr!r}, got {type(backbone).__name__}")
        self.front = front
        self.backbone = backbone
        self.num_classes: int = backbone.num_classes
        self.num_features: int = backbone.num_features

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(self.front(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 3.1, Fig. 2, Tables 2-3")
def base_network(*, num_classes: int = 2, in_channels: int = 3, activation: ActivationName = "relu",
                 init: InitName = "fan_in") -> nn.Module:
    """Base network on raw RGB: 95,362 parameters for 3 channels and 2 classes (Table 2)."""
    return BasicNetwork(in_channels=in_channels, num_classes=num_classes, activation=activation, init=init)


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 3.2, Fig. 3")
def sd_net(
    *,
    num_classes: int = 2,
    stain_matrix: np.ndarray | None = None,
    activation: ActivationName = "relu",
    init: InitName = "fan_in",
) -> nn.Module:
    """SD-Net: stain-deconvolution layer (with tanh) + base network.

    ``stain_matrix``: 3 x 3, rows = stains; the released code initialises it with a Macenko
    estimate from one reference cell (``blastscope.ops.stain.macenko_stain_matrix``); None uses
    the fixed Ruifrok-Johnston default because an entrypoint cannot read data.
    """
    front = StainDeconvolution(stain_matrix=stain_matrix, trainable=True, tanh=True)
    return FrontEndNet(front, BasicNetwork(3, num_classes, activation=activation, init=init))


@register_model(input_size=(3, 350, 350), paper=f"{_PAPER}, sec. 3.3, eq. 1, Fig. 5, Table 3")
def sdct_net(
    *,
    num_classes: int = 2,
    stain_matrix: np.ndarray | None = None,
    dct_output: DCTOutput = "log_abs",
    activation: ActivationName = "relu",
    init: InitName = "fan_in",
    spectral: SpectralMode = "paper",
) -> nn.Module:
    """SDCT-Net: SD layer (with tanh) -> per-channel 2-D DCT + log -> base network.

    Default ``dct_output="log_abs"``: the paper's equation 1, ``log10(1 + |DCT|)``. The authors'
    released code runs the signed ``sign(DCT) * log10(1 + |DCT|)``: ``dct_output="signed_log"``
    (recipe ``sdct_auxnet_code``). The DCT matrices are built lazily for the input size
    (350 x 350 in the paper). ``stain_matrix`` and ``init``: as for :func:`sd_net` and
    :class:`~blastscope.models.base_network.BasicNetwork`. ``spectral``: the spectral averaging
    the auxiliary SVM reads (``model.spectral_mode``; "released" = the released code's
    channel-mixing reshape, :class:`~blastscope.layers.spectral_average.SpectralAverage`).
    """
    front = nn.Sequential(
        StainDeconvolution(stain_matrix=stain_matrix, trainable=True, tanh=True),
        DCT2d(size=None, output=dct_output),
    )
    model = FrontEndNet(front, BasicNetwork(3, num_classes, activation=activation, init=init))
    if spectral not in ("paper", "released"):
        raise ValueError(f"spectral must be 'paper' or 'released', got spectral={spectral!r}")
    model.spectral_mode = spectral
    return model
