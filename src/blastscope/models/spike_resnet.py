"""Bottleneck ResNet of Spike-PCA-ResNet (Noshad & Fallahi 2021).

Section 2.3.1, Figs. 5-7 and Table 2: a 7x7 convolution and a 3x3 max-pool, then three stages of
(convolutional block, identity block, identity block), global average pooling and a fully
connected layer to two classes. Every block is 1x1 -> 3x3 -> 1x1 convolutions, each followed by
batch normalisation; the convolutional block adds a 1x1 convolution + BN projection shortcut.
Filters per stage are (32, 32, 64), (64, 64, 128), (64, 64, 256) (the released script, and
Table 2). That is 31 convolutions, the paper's "31-layer" network. The model returns logits;
the paper's softmax + cross-entropy (Eq. 10) is ``cross_entropy`` on them.

Table 2 (224 x 224 x 3 input, the ALL-IDB setting) is reproduced exactly by
``spike_resnet(in_channels=3, head_pool_size=2, input_size=(224, 224))``: every output shape
(112 -> 55 -> 28 -> 14) and every per-convolution learnable count of rows 2-31, conv biases
included (``conv_bias=True``), the 12,544-long flattened vector, the 25,090 dense learnables and
the text's total of 489,922 parameters. Entries that cannot be taken at face value:

* Row 1 (conv1) lists 9,427 learnables. No channel count gives that (``49 * C * 64 + 64``);
  9,472 (= 7*7*3*64 + 64, a digit transposition) does, and only 9,472 makes the stated total of
  489,922 add up.
* Row 32 (Flatten, [12544]) cannot be the flattened output of row 31 (14 x 14 x 256 = 50,176),
  nor the text's global average pooling (256). 12,544 = 7 x 7 x 256: an unlisted 2 x 2 average
  pooling precedes the flatten (as in common Keras ResNet-50 teaching code).
* Row 33 ("Softmax", 25,090 learnables) is the dense layer 12,544 -> 2 (softmax has none).
* The total 489,922 counts batch-norm moving mean and variance (Keras' non-trainable
  parameters): the table omits the 28 BN layers (2,816 channels, 4 values each, 11,264) and the
  pooling/ReLU/addition layers. In PyTorch terms 484,290 are parameters and 5,632 are BN buffers.
* Output shapes need a max-pool without padding (112 -> 55; torchvision's ResNet pads to 56)
  and the stride-2 of res3a/res4a in branch2a and branch1 (Caffe/Keras placement); both are
  the defaults here.

Deliberate differences in the registered ``spike_resnet`` (the C-NMC setting):

* Input 1 x 100 x 100: the released script feeds 100 x 100 grayscale images (the
  PCA-reconstructed, z-scored edge-latency maps of
  :class:`blastscope.transforms.edge_latency.EdgeLatencyEncoder`), not RGB. The paper's
  feature counts (150K = 224*224*3 for ALL-IDB, 30K = 100*100*3 for C-NMC) suggest the gray map
  was replicated to three channels, which adds no information; pass ``in_channels=3`` for that.
  Map sizes are then conv1 50, max-pool 24, res2 24, res3 12, res4 6.
* Head: global average pooling (the text), so the model accepts any input size; Table 2's
  flatten head is ``head_pool_size=2`` with a fixed ``input_size``.
* The third ReLU of each block is applied after the shortcut addition (standard ResNet;
  the text lists it inside component III, which would make the residual branch non-negative).
* Initialisation is not given by the paper: He-normal convolutions with zero biases (the
  Keras default would be Glorot-uniform); PyTorch BN defaults (Keras uses eps 1e-3).

The registered default has 453,442 parameters (conv1 has 3,200 with one input channel and the
head 514).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from blastscope.models._registry import register_model

__all__ = ["Bottleneck", "BottleneckResNet", "spike_resnet"]


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    if bias:
        nn.init.zeros_(conv.bias)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_channels)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block (Figs. 5 and 6); names follow Table 2.

    ``branch2a/2b/2c`` are the main path (stride on ``branch2a``), ``branch1`` the shortcut:
    a 1x1 conv + BN projection when ``projection`` (convolutional block), else the identity
    (identity block, which needs ``in_channels == filters[2]`` and ``stride == 1``).
    Shape: B x in_channels x H x W -> B x filters[2] x ceil(H / stride) x ceil(W / stride).
    """

    def __init__(
        self,
        in_channels: int,
        filters: Sequence[int],
        stride: int = 1,
        projection: bool = False,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        f1, f2, f3 = filters
        if not projection and (in_channels != f3 or stride != 1):
            raise ValueError(
                f"an identity block needs in_channels == filters[2] and stride == 1, "
                f"got in_channels={in_channels} filters={tuple(filters)} stride={stride}"
            )
        self.branch2a = _conv_bn(in_channels, f1, 1, stride, conv_bias)
        self.branch2b = _conv_bn(f1, f2, 3, 1, conv_bias)
        self.branch2c = _conv_bn(f2, f3, 1, 1, conv_bias)
        self.branch1 = _conv_bn(in_channels, f3, 1, stride, conv_bias) if projection else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.branch2a(x))
        out = self.act(self.branch2b(out))
        return self.act(self.branch2c(out) + self.branch1(x))


def _block_name(index: int) -> str:
    return chr(ord("a") + index) if index < 26 else f"block{index}"


class BottleneckResNet(nn.Module):
    """Stem (conv k x k stride 2 + BN + ReLU + 3x3/2 max-pool) and stages of bottleneck blocks.

    Args:
        in_channels: input channels.
        num_classes: number of logits.
        stage_filters: (f1, f2, f3) per stage.
        stage_depths: blocks per stage (the first is a convolutional block, the rest identity).
        stage_strides: stride of each stage's convolutional block.
        stem_channels, stem_kernel_size: the first convolution (stride 2, padding k // 2).
        stem_pool_padding: padding of the 3x3 stride-2 max-pool (0 as in Table 2).
        conv_bias: give every convolution a bias (Table 2 counts them; BN makes them redundant).
        head_pool_size: None = global average pooling; k = k x k average pooling then flatten
            (Table 2's head), which fixes the input size and needs ``input_size``.
        input_size: (H, W), required only with ``head_pool_size``.

    Shape: B x in_channels x H x W -> logits B x num_classes. ``forward_features`` returns the
    last stage's maps B x f3 x h x w; ``forward_head(..., pre_logits=True)`` the B x num_features
    pooled vector (``num_features = f3`` with global pooling).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        stage_filters: Sequence[Sequence[int]] = ((32, 32, 64), (64, 64, 128), (64, 64, 256)),
        stage_depths: Sequence[int] = (3, 3, 3),
        stage_strides: Sequence[int] = (1, 2, 2),
        stem_channels: int = 64,
        stem_kernel_size: int = 7,
        stem_pool_padding: int = 0,
        conv_bias: bool = False,
        head_pool_size: int | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        filters = [tuple(int(f) for f in fs) for fs in stage_filters]
        depths, strides = [int(d) for d in stage_depths], [int(s) for s in stage_strides]
        if in_channels < 1 or num_classes < 1 or stem_channels < 1:
            raise ValueError(
                f"channel counts must be >= 1, got in_channels={in_channels} "
                f"num_classes={num_classes} stem_channels={stem_channels}"
            )
        if not filters or any(len(f) != 3 or min(f) < 1 for f in filters):
            raise ValueError(f"stage_filters must be positive (f1, f2, f3) triples, got stage_filters={stage_filters}")
        if len(depths) != len(filters) or len(strides) != len(filters) or min(depths) < 1 or min(strides) < 1:
            raise ValueError(
                f"stage_depths and stage_strides need one positive value per stage, got "
                f"stage_depths={tuple(stage_depths)} stage_strides={tuple(stage_strides)} for {len(filters)} stages"
            )
        if stem_kernel_size < 1 or stem_kernel_size % 2 == 0:
            raise ValueError(f"stem_kernel_size must be odd and >= 1, got stem_kernel_size={stem_kernel_size}")
        if stem_pool_padding not in (0, 1):
            raise ValueError(f"stem_pool_padding must be 0 or 1, got stem_pool_padding={stem_pool_padding}")
        self.num_classes = num_classes
        self.head_pool_size = head_pool_size
        stem_conv = nn.Conv2d(in_channels, stem_channels, stem_kernel_size, 2, stem_kernel_size // 2, bias=conv_bias)
        nn.init.kaiming_normal_(stem_conv.weight, mode="fan_in", nonlinearity="relu")
        if conv_bias:
            nn.init.zeros_(stem_conv.bias)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=stem_conv,
                bn1=nn.BatchNorm2d(stem_channels),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, stride=2, padding=stem_pool_padding),
            )
        )
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        channels = stem_channels
        for i, (f, depth, stride) in enumerate(zip(filters, depths, strides)):
            blocks = OrderedDict()
            for j in range(depth):
                blocks[_block_name(j)] = Bottleneck(
                    channels, f, stride if j == 0 else 1, projection=j == 0, conv_bias=conv_bias
                )
                channels = f[2]
            stages[f"res{i + 2}"] = nn.Sequential(blocks)
        self.stages = nn.Sequential(stages)
        if head_pool_size is None:
            self.num_features = channels
        else:
            if head_pool_size < 1 or input_size is None:
                raise ValueError(
                    f"head_pool_size must be >= 1 and needs input_size, got "
                    f"head_pool_size={head_pool_size} input_size={input_size}"
                )
            h, w = (self._feature_side(s, stem_kernel_size, stem_pool_padding, strides) for s in input_size)
            if min(h, w) < head_pool_size:
                raise ValueError(
                    f"input_size={tuple(input_size)} gives {h} x {w} feature maps, "
                    f"smaller than head_pool_size={head_pool_size}"
                )
            self.num_features = channels * (h // head_pool_size) * (w // head_pool_size)
        self.fc = nn.Linear(self.num_features, num_classes)

    @staticmethod
    def _feature_side(side: int, stem_kernel_size: int, pool_padding: int, strides: Sequence[int]) -> int:
        side = (side - 1) // 2 + 1  # stem conv, padding k // 2
        side = (side + 2 * pool_padding - 3) // 2 + 1
        for stride in strides:
            side = (side - 1) // stride + 1
        return side

    def forward_features(self, x: Tensor) -> Tensor:
        """B x in_channels x H x W -> B x f3 x h x w (last stage)."""
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature maps -> pooled vector B x num_features (``pre_logits=True``) or logits B x num_classes."""
        if self.head_pool_size is None:
            x = torch.flatten(x.mean(dim=(2, 3)), 1)
        else:
            x = torch.flatten(nn.functional.avg_pool2d(x, self.head_pool_size), 1)
            if x.shape[1] != self.num_features:
                raise ValueError(
                    f"flattened features have length {x.shape[1]}, the head expects {self.num_features}; "
                    "the input size differs from input_size"
                )
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(input_size=(1, 100, 100), paper="Noshad & Fallahi 2021, Sec. 2.3.1, Table 2")
def spike_resnet(**kwargs) -> BottleneckResNet:
    """Spike-PCA-ResNet classifier: 9 bottleneck blocks, filters [32,32,64], [64,64,128], [64,64,256].

    Defaults: 1 x 100 x 100 input (released script), 2 classes, conv biases (Table 2 counts),
    global average pooling. Keyword arguments override them, e.g. Table 2's exact layout is
    ``spike_resnet(in_channels=3, head_pool_size=2, input_size=(224, 224))``.
    """
    config = dict(
        in_channels=1,
        num_classes=2,
        stage_filters=((32, 32, 64), (64, 64, 128), (64, 64, 256)),
        stage_depths=(3, 3, 3),
        stage_strides=(1, 2, 2),
        stem_channels=64,
        stem_kernel_size=7,
        stem_pool_padding=0,
        conv_bias=True,
    )
    config.update(kwargs)
    return BottleneckResNet(**config)
