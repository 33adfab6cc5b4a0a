"""The straightforward SDCT-Net every speed-up is measured against (and checked against).

Written the obvious way, as the authors' released PyTorch code runs it: NCHW float32 tensors, the
stain layer as ``-log10`` + 1 x 1 convolution + ``tanh``, the DCT as two matrix products with a
precomputed 350 x 350 DCT-II matrix followed by ``sign(d) * log10(1 + |d|)`` (via ``log1p``), stock
Conv-BN-ReLU blocks and a plain bilinear pooling. Same maths as
:func:`blastscope.models.sdct.sdct_net` (Gehlot et al. 2020, sections 3.1-3.3) and the same
parameter names, so ``load_state_dict`` moves weights between the two.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blastscope.ops.dct import dct_matrix

__all__ = ["ReferenceSDCTNet", "reference_from"]


class _StainLayer(nn.Module):
    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, kernel_size=1, bias=False)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        intensity = torch.where(x == 0, torch.ones_like(x), x).clamp_min(self.eps)
        return torch.tanh(self.conv(-torch.log10(intensity)))


class _MatrixDCT(nn.Module):
    def __init__(self, size: int, signed: bool) -> None:
        super().__init__()
        self.register_buffer("t", dct_matrix(size), persistent=False)
        self.signed = signed

    def forward(self, x: Tensor) -> Tensor:
        d = self.t @ x @ self.t.T
        magnitude = torch.log1p(d.abs()) / math.log(10.0)  # log10(1 + |d|), accurate for small |d|
        return torch.sign(d) * magnitude if self.signed else magnitude


def _block(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=padding), nn.BatchNorm2d(cout), nn.ReLU())


class _Backbone(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        w1, w2, w3, w4, w5, w6 = widths
        self.features = nn.Sequential()
        self.features.add_module("conv1", _block(in_channels, w1, 5, stride=2, padding=1))
        self.features.add_module("conv2", _block(w1, w2))
        self.features.add_module("pool1", nn.MaxPool2d(2))
        self.features.add_module("conv3", _block(w2, w3))
        self.features.add_module("pool2", nn.MaxPool2d(2))
        self.features.add_module("conv4", _block(w3, w4))
        self.features.add_module("pool3", nn.MaxPool2d(2))
        self.features.add_module("conv5", _block(w4, w5))
        self.features.add_module("pool4", nn.MaxPool2d(2))
        self.features.add_module("conv6", _block(w5, w6))
        self.fc = nn.Linear(w6 * w6, num_classes)


class ReferenceSDCTNet(nn.Module):
    """SD layer -> matrix DCT + signed/unsigned log -> base network, written plainly.

    Shape: B x 3 x size x size RGB in [0, 1] -> B x num_classes logits;
    ``forward_features`` gives the last conv maps (B x 64 x 10 x 10 at 350).
    """

    def __init__(self, size: int = 350, num_classes: int = 2, signed: bool = True,
                 widths: tuple[int, ...] = (16, 16, 32, 48, 64, 64)) -> None:
        super().__init__()
        self.front = nn.Sequential(_StainLayer(), _MatrixDCT(size, signed))
        self.backbone = _Backbone(3, num_classes, widths)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.features(self.front(x))

    def forward_head(self, maps: Tensor) -> Tensor:
        f = maps.flatten(2)
        gram = torch.bmm(f, f.transpose(1, 2)).flatten(1)
        gram = torch.sign(gram) * torch.sqrt(gram.abs() + 1e-5)
        return self.backbone.fc(F.normalize(gram, dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def reference_from(model: nn.Module, size: int) -> ReferenceSDCTNet:
    """A :class:`ReferenceSDCTNet` holding a copy of ``model``'s weights (an ``sdct_net``), NCHW."""
    widths = tuple(block[0].out_channels for name, block in model.backbone.features.named_children() if name.startswith("conv"))
    signed = getattr(model.front[1], "output", "signed_log") == "signed_log"
    ref = ReferenceSDCTNet(size, model.num_classes, signed, widths)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    ref.load_state_dict(state)
    return ref
