"""Tests for blastscope.models.base_network (Gehlot et al. 2020, Tables 2-3; LeukoNet Fig. 1)."""
import math

import pytest
import torch
from torch import nn

from blastscope.layers.activations import PTELU
from blastscope.layers.spectral_average import SpectralAverage
from blastscope.models.base_network import BasicNetwork, count_parameters

# Table 3 of Gehlot et al. 2020: output size of every layer at a 3 x 350 x 350 input.
TABLE_3 = {
    "conv1": (16, 174, 174),
    "conv2": (16, 174, 174),
    "pool1": (16, 87, 87),
    "conv3": (32, 87, 87),
    "pool2": (32, 43, 43),
    "conv4": (48, 43, 43),
    "pool3": (48, 21, 21),
    "conv5": (64, 21, 21),
    "pool4": (64, 10, 10),
    "conv6": (64, 10, 10),
}


def test_parameter_count_is_table_2():
    """Table 2: the base network has exactly 95,362 learnable parameters (3 channels, 2 classes)."""
    assert count_parameters(BasicNetwork(in_channels=3, num_classes=2)) == 95_362


def test_parameter_count_formula_for_other_widths():
    """Conv(k*k*cin*cout + cout) + BN(2*cout) per block, plus the C*C -> classes linear layer."""
    widths, cin, classes = (4, 5, 6, 7, 8, 9), 6, 3
    kernels = (5, 3, 3, 3, 3, 3)
    expected, prev = 0, cin
    for k, w in zip(kernels, widths):
        expected += k * k * prev * w + w + 2 * w
        prev = w
    expected += widths[-1] ** 2 * classes + classes
    assert count_parameters(BasicNetwork(cin, classes, widths=widths)) == expected


def test_every_intermediate_shape_of_table_3_at_350():
    model = BasicNetwork().eval()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(model.features, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in TABLE_3
    ]
    x = torch.rand(1, 3, 350, 350)
    with torch.no_grad():
        feats = model.forward_features(x)
        vec = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
    for h in hooks:
        h.remove()
    assert shapes == TABLE_3
    assert vec.shape == (1, 4096) and logits.shape == (1, 2)  # "Bilinear Pooling 4096", "Linear 2"
    assert SpectralAverage()(feats).shape == (1, 100)  # auxiliary classifier's 100 features


def test_blocks_are_conv_with_bias_bn_relu_and_he_initialised():
    model = BasicNetwork()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 and all(c.bias is not None for c in convs)
    first = model.features.conv1
    assert first[0].kernel_size == (5, 5) and first[0].stride == (2, 2) and first[0].padding == (1, 1)
    assert isinstance(first[1], nn.BatchNorm2d) and isinstance(first[2], nn.ReLU)
    big = BasicNetwork(widths=(16, 16, 32, 48, 64, 256))  # enough weights for a stable std estimate
    w = big.features.conv6[0].weight
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
    assert torch.all(big.features.conv6[0].bias == 0)


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("prelu", nn.PReLU), ("ptelu", PTELU)])
def test_activation_option(activation, cls):
    model = BasicNetwork(activation=activation)
    acts = [m for m in model.modules() if isinstance(m, cls)]
    assert len(acts) == 6
    out = model(torch.rand(2, 3, 40, 40))
    out.sum().backward()
    assert out.shape == (2, 2) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_forward_chains_features_and_head():
    model = BasicNetwork(in_channels=6, num_classes=4).eval()
    x = torch.rand(2, 6, 48, 48)
    torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))
    assert model.num_features == 4096 and model.num_classes == 4


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="in_channels"):
        BasicNetwork(in_channels=0)
    with pytest.raises(ValueError, match="num_classes"):
        BasicNetwork(num_classes=0)
    with pytest.raises(ValueError, match="widths"):
        BasicNetwork(widths=(16, 32))
    with pytest.raises(ValueError, match="activation"):
        BasicNetwork(activation="gelu")
