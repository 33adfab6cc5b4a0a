"""The compact bilinear CNN of LeukoNet ("Basic Network") and SDCT-AuxNet-theta ("base network").

Mourya et al. 2018, section 4 and Fig. 1; Gehlot et al. 2020, section 3.1, Fig. 2, Table 2
(95,362 parameters for 3 input channels and 2 classes) and Table 3 (sizes at 350 x 350):

    C1 conv 5x5 stride 2 pad 1   3 -> 16    350 -> 174
    C2 conv 3x3                 16 -> 16    174, maxpool 2 -> 87
    C3 conv 3x3                 16 -> 32     87, maxpool 2 -> 43
    C4 conv 3x3                 32 -> 48     43, maxpool 2 -> 21
    C5 conv 3x3                 48 -> 64     21, maxpool 2 -> 10
    C6 conv 3x3                 64 -> 64     10
    bilinear pooling 64 x 10 x 10 -> 4096, linear 4096 -> 2

As in the released SDCT code every conv is Conv(bias=True) + BatchNorm + activation and 3x3 convs
use padding 1. Initialisation (the papers are silent): ``init="fan_in"`` (default) draws conv
weights He-normal with fan-in and ReLU gain, zero conv biases, and keeps PyTorch's default for the
linear layer; ``init="released"`` is what the authors' released SDCT code does: He-normal with
FAN-OUT for the convolutions (zero biases) and the linear layer N(0, 0.01) with zero bias. The
model returns logits; the papers' log-softmax + NLL loss equals ``cross_entropy`` on these logits.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blastscope.layers.activations import ActivationName, make_activation
from blastscope.layers.bilinear_pool import BilinearPool

__all__ = ["ConvBNAct", "BasicNetwork", "count_parameters", "InitName"]

InitName = Literal["fan_in", "released"]


class ConvBNAct(nn.Sequential):
    """Conv2d (with bias) -> BatchNorm2d -> activation, He-normal conv weights, zero bias.

    ReLU runs in place on the BatchNorm output (same values, one tensor fewer per block). In eval
    mode (BatchNorm using its running statistics) the BatchNorm is folded into the convolution:
    ``conv(x, w * s, (b - mean) * s + beta)`` with ``s = gamma / sqrt(var + eps)``, the same affine
    map in one pass instead of two (as onnxruntime does on export). Modules and state are unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        conv, bn, act = self[0], self[1], self[2]
        if self.training or not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None or torch.jit.is_tracing():
            return super().forward(x)
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = (conv.bias - bn.running_mean) * scale + bn.bias
        y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        return act(y)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        activation: ActivationName = "relu",
    ) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        super().__init__(conv, nn.BatchNorm2d(out_channels), make_activation(activation, out_channels, inplace=True))


class BasicNetwork(nn.Module):
    """Six conv blocks, four max-pools, bilinear pooling and a linear classifier.

    Args:
        in_channels: input channels (3 for RGB/SD/DCT inputs, 6 for LeukoNet Stage-2C).
        num_classes: number of logits.
        widths: output channels of C1..C6; the papers use (16, 16, 32, 48, 64, 64).
        activation: "relu" (papers' default), "prelu" or "ptelu" (LeukoNet Table 1).
        init: "fan_in" (default) or "released" (the authors' released code; module docstring).

    Shape: B x in_channels x H x W (H, W >= 33) -> B x num_classes logits.
    ``forward_features`` gives B x widths[-1] x h x w (64 x 10 x 10 at 350 x 350);
    ``forward_head(..., pre_logits=True)`` gives the B x widths[-1]**2 bilinear vector.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        widths: Sequence[int] = (16, 16, 32, 48, 64, 64),
        activation: ActivationName = "relu",
        init: InitName = "fan_in",
    ) -> None:
        super().__init__()
        if init not in ("fan_in", "released"):
            raise ValueError(f"init must be 'fan_in' or 'released', got init={init!r}")
        widths = tuple(int(w) for w in widths)
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got in_channels={in_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got num_classes={num_classes}")
        if len(widths) != 6 or min(widths) < 1:
            raise ValueError(f"widths must be 6 positive channel counts, got widths={widths}")
        w1, w2, w3, w4, w5, w6 = widths
        self.num_classes = num_classes
        self.num_features = w6 * w6
        self.features = nn.Sequential()
        self.features.add_module("conv1", ConvBNAct(in_channels, w1, 5, stride=2, padding=1, activation=activation))
        self.features.add_module("conv2", ConvBNAct(w1, w2, activation=activation))
        self.features.add_module("pool1", nn.MaxPool2d(2))
        self.features.add_module("conv3", ConvBNAct(w2, w3, activation=activation))
        self.features.add_module("pool2", nn.MaxPool2d(2))
        self.features.add_module("conv4", ConvBNAct(w3, w4, activation=activation))
        self.features.add_module("pool3", nn.MaxPool2d(2))
        self.features.add_module("conv5", ConvBNAct(w4, w5, activation=activation))
        self.features.add_module("pool4", nn.MaxPool2d(2))
        self.features.add_module("conv6", ConvBNAct(w5, w6, activation=activation))
        self.pool = BilinearPool()
        self.fc = nn.Linear(self.num_features, num_classes)
        if init == "released":
            for m in self.features.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            nn.init.normal_(self.fc.weight, 0.0, 0.01)
            nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """B x C x H x W -> last conv maps B x widths[-1] x h x w."""
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature maps -> bilinear vector (``pre_logits=True``) or logits."""
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what Table 2 of Gehlot et al. 2020 counts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

