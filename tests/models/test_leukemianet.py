"""Tests for LeukemiaNet: the paper's layer layout, shapes at 227, the timm-style contract."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blastscope.models import create_model, model_info
from blastscope.models.leukemianet import LeukemiaNet


def expected_feature_side(size: int, kernels: tuple[int, ...] = (4, 4), pool: int = 2) -> int:
    for k in kernels:
        size = (size - k + 1) // pool
    return size


def test_registered_with_paper_input_size() -> None:
    info = model_info("leukemianet")
    assert info.input_size == (3, 227, 227)
    model = create_model("leukemianet")
    assert isinstance(model, LeukemiaNet) and model.num_classes == 3


def test_first_block_is_4x4_conv_with_10_filters_bn_relu_pool() -> None:
    layers = list(create_model("leukemianet").features)
    conv, bn, relu, pool = layers[:4]
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (4, 4) and conv.out_channels == 10 and conv.in_channels == 3
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 10
    assert isinstance(relu, nn.ReLU)
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
    assert isinstance(layers[4], nn.Conv2d) and layers[4].out_channels == 20


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_shapes_at_227(num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model("leukemianet", num_classes=num_classes).eval()
    x = torch.rand(2, 3, 227, 227)
    side = expected_feature_side(227)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 20, side, side)
        assert model.num_features == 20 * side * side == 58320
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
        logits = model(x)
        assert logits.shape == (2, num_classes)
        torch.testing.assert_close(logits, model.forward_head(features))


def test_parameter_count_matches_layer_arithmetic() -> None:
    model = create_model("leukemianet")
    conv1 = 3 * 10 * 16 + 10
    conv2 = 10 * 20 * 16 + 20
    bn = 2 * (10 + 20)
    fc = 58320 * 3 + 3
    assert sum(p.numel() for p in model.parameters()) == conv1 + conv2 + bn + fc


def test_logits_train_with_cross_entropy() -> None:
    torch.manual_seed(0)
    model = LeukemiaNet(num_classes=3, channels=(4, 6), input_size=(32, 32))
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    torch.testing.assert_close(loss, F.nll_loss(F.log_softmax(logits, dim=1), y))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_wrong_input_size_raises_clearly() -> None:
    model = LeukemiaNet(channels=(4, 6), input_size=(32, 32))
    with pytest.raises(ValueError, match=r"\(32, 32\)"):
        model(torch.rand(1, 3, 40, 40))


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="num_classes=0"):
        LeukemiaNet(num_classes=0)
    with pytest.raises(ValueError, match="input_size"):
        LeukemiaNet(input_size=(8, 8))
    with pytest.raises(ValueError, match="kernel_size"):
        LeukemiaNet(kernel_size=(4, 4, 4))
