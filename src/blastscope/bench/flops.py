"""Analytic FLOP count of a forward and a training step (conv, linear, bilinear pooling, DCT).

One multiply-add counts as 2 FLOPs. Per module, for input ``B x C x H x W``:

* ``Conv2d``: ``2 * B * C_out * H_out * W_out * (C_in / groups) * k_h * k_w`` (bias ignored);
* ``Linear``: ``2 * B * in * out``;
* ``BilinearPool``: the Gram matrix ``X X^T``, ``2 * B * C^2 * H * W``;
* ``DCT2d`` / the SD layer's 1 x 1 convolution: the DCT counted in its matrix form
  ``T_H X T_W^T``, ``2 * B * C * (H^2 W + H W^2)``; the 1 x 1 stain convolution ``2 * B * 9 * H * W``.

Backward: a weighted layer costs one forward for the weight gradient plus one for the input
gradient when its input needs a gradient (the first layer's input, an image, does not); the DCT
and bilinear pooling have no weights and cost one forward for the input gradient. Element-wise
work (BatchNorm, ReLU, pooling, logs) is not counted, as is usual for roofline figures.

The DCT is counted as the released code computes it (two matrix products, O(n^3)); our CPU
path uses an FFT and does far fewer operations, so FLOP rates that include the DCT overstate
the hardware utilisation of that path. Reports therefore give the rate with and without it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["FlopCount", "count_flops"]

_DCT, _STAIN = "dct", "stain"


@dataclass
class FlopCount:
    """FLOPs of one image: ``forward[kind]`` and ``backward[kind]`` per kind (conv, linear, bilinear, dct, stain)."""

    forward: dict[str, int] = field(default_factory=dict)
    backward: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, fwd: int, bwd: int) -> None:
        self.forward[kind] = self.forward.get(kind, 0) + int(fwd)
        self.backward[kind] = self.backward.get(kind, 0) + int(bwd)

    def forward_total(self, exclude: tuple[str, ...] = ()) -> int:
        return sum(v for k, v in self.forward.items() if k not in exclude)

    def train_total(self, exclude: tuple[str, ...] = ()) -> int:
        return self.forward_total(exclude) + sum(v for k, v in self.backward.items() if k not in exclude)

    def to_dict(self) -> dict:
        return {"forward": dict(self.forward), "backward": dict(self.backward),
                "forward_total": self.forward_total(), "train_total": self.train_total(),
                "train_total_without_dct": self.train_total(exclude=(_DCT,))}


def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> FlopCount:
    """Count the FLOPs of one ``C x H x W`` image through ``model``.

    Runs one training-mode forward of a batch of 2 on a copy of the model (training mode calls
    every layer as a module, so the hooks see them; the copy keeps ``model``'s BatchNorm
    statistics untouched), and reports per image.
    """
    import copy

    from blastscope.layers.bilinear_pool import BilinearPool
    from blastscope.layers.dct import DCT2d
    from blastscope.layers.stain_deconvolution import StainDeconvolution

    model = copy.deepcopy(model)
    count = FlopCount()
    inside_stain: set[int] = set()
    hooks = []

    def on_stain(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        b, _, h, w = inputs[0].shape
        fwd = 2 * b * 9 * h * w
        count.add(_STAIN, fwd, fwd if mod.conv.weight.requires_grad else 0)

    def on_dct(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        b, c, h, w = inputs[0].shape
        fwd = 2 * b * c * (h * h * w + h * w * w)
        count.add(_DCT, fwd, fwd if inputs[0].requires_grad else 0)

    def on_conv(mod: nn.Conv2d, inputs: tuple, out: torch.Tensor) -> None:
        if id(mod) in inside_stain:
            return
        b, _, ho, wo = out.shape
        kh, kw = mod.kernel_size
        fwd = 2 * b * mod.out_channels * ho * wo * (mod.in_channels // mod.groups) * kh * kw
        bwd = (fwd if mod.weight.requires_grad else 0) + (fwd if inputs[0].requires_grad else 0)
        count.add("conv", fwd, bwd)

    def on_linear(mod: nn.Linear, inputs: tuple, out: torch.Tensor) -> None:
        fwd = 2 * inputs[0].shape[0] * mod.in_features * mod.out_features
        bwd = (fwd if mod.weight.requires_grad else 0) + (fwd if inputs[0].requires_grad else 0)
        count.add("linear", fwd, bwd)

    def on_bilinear(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        b, c, h, w = inputs[0].shape
        fwd = 2 * b * c * c * h * w
        count.add("bilinear", fwd, fwd if inputs[0].requires_grad else 0)

    for mod in model.modules():
        if isinstance(mod, StainDeconvolution):
            inside_stain.add(id(mod.conv))
            hooks.append(mod.register_forward_hook(on_stain))
        elif isinstance(mod, DCT2d):
            hooks.append(mod.register_forward_hook(on_dct))
        elif isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(on_conv))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(on_linear))
        elif isinstance(mod, BilinearPool):
            hooks.append(mod.register_forward_hook(on_bilinear))
    try:
        model.train()
        with torch.enable_grad():
            model(torch.rand(2, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return FlopCount({k: v // 2 for k, v in count.forward.items()}, {k: v // 2 for k, v in count.backward.items()})
