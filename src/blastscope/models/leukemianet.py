"""LeukemiaNet: a small two-block CNN for ALL / AML / normal images (LeukemiaNet paper, section 3.2, Fig. 4).

The paper's network: input 227 x 227 x 3; a 4 x 4 convolution with 10 filters, batch
normalisation, ReLU and 2 x 2 max pooling; a second convolution block; a fully connected layer
to the 3 classes (the paper orders them AML, ALL, normal); softmax and a classification layer
(MATLAB), i.e. cross-entropy. Trained 30 epochs at learning rate 0.001 (section 4).

Choices where the paper is silent (all constructor arguments; the paper's values sit in the
``leukemianet`` entrypoint):
- the second block repeats the first's layout (4 x 4 convolution, batch norm, ReLU, 2 x 2 max
  pooling) with 20 filters; the paper does not give its width;
- stride 1 and no padding in the convolutions, stride 2 in the pooling (MATLAB
  ``convolution2dLayer`` defaults; pooling as the usual ``maxPooling2dLayer(2, 'Stride', 2)``),
  so 227 -> 224 -> 112 -> 109 -> 54 and the head sees 20 x 54 x 54 = 58,320 features;
- weights are Glorot-uniform and biases zero (MATLAB's defaults), not PyTorch's defaults;
- no input normalisation layer: MATLAB's ``imageInputLayer`` subtracts the training set's mean
  image, a data-set statistic we leave out; the batch norm after each convolution takes its place;
- the model returns logits; ``F.cross_entropy`` on them equals the paper's softmax + cross-entropy.
Section 4's "[228x227x3]" input size is read as a typo for 227 x 227 x 3.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from blastscope.models._registry import register_model

__all__ = ["LeukemiaNet", "leukemianet"]


class LeukemiaNet(nn.Module):
    """Stack of [Conv(k x k, stride 1, no padding) -> BN -> ReLU -> MaxPool(p, stride p)] blocks,
    flattened into one linear layer.

    Args:
        num_classes: number of output logits.
        in_chans: input channels (3 for RGB in [0, 1]).
        channels: output channels of each convolution block.
        kernel_size: convolution kernel size, one for all blocks or one per block.
        pool_size: max-pooling window and stride.
        input_size: (H, W) the linear head is sized for; other sizes raise in ``forward_head``.
        drop_rate: dropout before the linear layer (0 in the paper).

    Shapes: input B x in_chans x H x W; ``forward_features`` -> B x channels[-1] x h x w;
    ``forward_head(..., pre_logits=True)`` -> B x num_features; ``forward`` -> B x num_classes logits.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        channels: Sequence[int] = (10, 20),
        kernel_size: int | Sequence[int] = 4,
        pool_size: int = 2,
        input_size: tuple[int, int] = (227, 227),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        kernels = (kernel_size,) * len(channels) if isinstance(kernel_size, int) else tuple(kernel_size)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got num_classes={num_classes}")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got in_chans={in_chans}")
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty sequence of positive ints, got channels={channels}")
        if len(kernels) != len(channels) or min(kernels) < 1:
            raise ValueError(f"kernel_size must be a positive int or one per block, got kernel_size={kernel_size}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got pool_size={pool_size}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got drop_rate={drop_rate}")
        height, width = input_size
        for k in kernels:
            height, width = (height - k + 1) // pool_size, (width - k + 1) // pool_size
        if height < 1 or width < 1:
            raise ValueError(f"input_size={input_size} is too small for kernels {kernels} and pool_size={pool_size}")

        self.num_classes = num_classes
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.feature_shape = (channels[-1], height, width)
        self.num_features = channels[-1] * height * width
        blocks: list[nn.Module] = []
        previous = in_chans
        for out_chans, k in zip(channels, kernels):
            blocks += [
                nn.Conv2d(previous, out_chans, kernel_size=k),
                nn.BatchNorm2d(out_chans),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(pool_size, stride=pool_size),
            ]
            previous = out_chans
        self.features = nn.Sequential(*blocks)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """B x in_chans x H x W in [0, 1] -> B x channels[-1] x h x w (after the last pooling)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten the feature maps: B x num_features if ``pre_logits``, else B x num_classes logits."""
        if tuple(x.shape[1:]) != self.feature_shape:
            raise ValueError(
                f"feature maps of shape {tuple(x.shape[1:])} do not fit the head built for {self.feature_shape}; "
                f"the model expects inputs of size {self.input_size} (set input_size to change it)"
            )
        x = torch.flatten(x, 1)
        if pre_logits:
            return x
        return self.fc(self.head_drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(input_size=(3, 227, 227), paper="LeukemiaNet, section 3.2, Fig. 4")
def leukemianet(**kwargs) -> LeukemiaNet:
    """LeukemiaNet as in the paper: 227 x 227 RGB, blocks of 10 and 20 filters of 4 x 4, 3 classes."""
    settings = dict(num_classes=3, in_chans=3, channels=(10, 20), kernel_size=4, pool_size=2, input_size=(227, 227))
    settings.update(kwargs)
    return LeukemiaNet(**settings)
