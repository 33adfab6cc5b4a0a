"""Tests for blastscope.models.spike_resnet against Table 2 of Noshad & Fallahi (2021)."""
import pytest
import torch
from torch import nn

from blastscope.models import create_model, model_info
from blastscope.models.spike_resnet import Bottleneck, BottleneckResNet, spike_resnet

# Table 2 rows 2-31: name, output shape [H, W, C] at 224 x 224 x 3, learnables (weights + bias).
TABLE2 = [
    ("res2a_branch2a", (55, 55, 32), 2080), ("res2a_branch2b", (55, 55, 32), 9248),
    ("res2a_branch2c", (55, 55, 64), 2112), ("res2a_branch1", (55, 55, 64), 4160),
    ("res2b_branch2a", (55, 55, 32), 2080), ("res2b_branch2b", (55, 55, 32), 9248),
    ("res2b_branch2c", (55, 55, 64), 2112), ("res2c_branch2a", (55, 55, 32), 2080),
    ("res2c_branch2b", (55, 55, 32), 9248), ("res2c_branch2c", (55, 55, 64), 2112),
    ("res3a_branch2a", (28, 28, 64), 4160), ("res3a_branch2b", (28, 28, 64), 36928),
    ("res3a_branch2c", (28, 28, 128), 8320), ("res3a_branch1", (28, 28, 128), 8320),
    ("res3b_branch2a", (28, 28, 64), 8256), ("res3b_branch2b", (28, 28, 64), 36928),
    ("res3b_branch2c", (28, 28, 128), 8320), ("res3c_branch2a", (28, 28, 64), 8256),
    ("res3c_branch2b", (28, 28, 64), 36928), ("res3c_branch2c", (28, 28, 128), 8320),
    ("res4a_branch2a", (14, 14, 64), 8256), ("res4a_branch2b", (14, 14, 64), 36928),
    ("res4a_branch2c", (14, 14, 256), 16640), ("res4a_branch1", (14, 14, 256), 33024),
    ("res4b_branch2a", (14, 14, 64), 16448), ("res4b_branch2b", (14, 14, 64), 36928),
    ("res4b_branch2c", (14, 14, 256), 16640), ("res4c_branch2a", (14, 14, 64), 16448),
    ("res4c_branch2b", (14, 14, 64), 36928), ("res4c_branch2c", (14, 14, 256), 16640),
]


def _conv(model: BottleneckResNet, name: str) -> nn.Conv2d:
    stage, rest = name[:4], name[4:]
    block, branch = rest.split("_")
    return getattr(getattr(model.stages, stage), block).get_submodule(f"{branch}.conv")


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def table2_model() -> BottleneckResNet:
    torch.manual_seed(0)
    return spike_resnet(in_channels=3, head_pool_size=2, input_size=(224, 224)).eval()


def test_table2_output_shapes_and_learnables(table2_model):
    shapes = {}
    hooks = [
        _conv(table2_model, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
        for name, _, _ in TABLE2
    ]
    stem = table2_model.stem.conv1.register_forward_hook(lambda m, i, o: shapes.__setitem__("conv1", o.shape))
    with torch.no_grad():
        logits = table2_model(torch.rand(1, 3, 224, 224))
    for h in [*hooks, stem]:
        h.remove()
    assert logits.shape == (1, 2)
    assert shapes["conv1"] == (1, 64, 112, 112)
    for name, (h, w, c), learnables in TABLE2:
        assert shapes[name] == (1, c, h, w), name
        assert _numel(_conv(table2_model, name)) == learnables, name
    assert len([m for m in table2_model.modules() if isinstance(m, nn.Conv2d)]) == 31  # "31-layer" network


def test_table2_conv1_count_is_a_typo(table2_model):
    """Row 1 lists 9,427 learnables: 49 * C * 64 + 64 has no integer solution; 9,472 (C = 3) does."""
    assert (9427 - 64) % (7 * 7 * 64) != 0
    assert _numel(table2_model.stem.conv1) == 7 * 7 * 3 * 64 + 64 == 9472


def test_table2_head_and_total(table2_model):
    """Rows 32-33: flatten [12544] = 7 x 7 x 256 after a 2 x 2 average pool, dense 12544 -> 2 = 25,090;
    the text's 489,922 = parameters + BN moving mean/variance (Keras' non-trainable count)."""
    assert table2_model.num_features == 12544 == 7 * 7 * 256
    assert _numel(table2_model.fc) == 25090
    features = table2_model.forward_features(torch.rand(1, 3, 224, 224))
    assert features.shape == (1, 256, 14, 14)
    assert table2_model.forward_head(features, pre_logits=True).shape == (1, 12544)
    params = _numel(table2_model)
    bn_stats = sum(b.numel() for n, b in table2_model.named_buffers() if n.endswith(("running_mean", "running_var")))
    bn_channels = sum(m.num_features for m in table2_model.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn_stats == 2 * bn_channels
    assert params + bn_stats == 489922
    conv_total = 9472 + sum(learnables for _, _, learnables in TABLE2)
    assert params == conv_total + 2 * bn_channels + 25090


def test_registered_default_contract():
    """Model conventions: logits, forward == forward_head(forward_features), pre-logits = num_features."""
    info = model_info("spike_resnet")
    assert info.input_size == (1, 100, 100)
    torch.manual_seed(0)
    model = create_model("spike_resnet").eval()
    x = torch.randn(2, *info.input_size)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 256, 6, 6)
        pooled = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(pooled, features.mean(dim=(2, 3)))
        torch.testing.assert_close(model(x), model.forward_head(features))
    assert model.num_features == 256 and model.num_classes == 2
    assert _numel(model.stem.conv1) == 7 * 7 * 1 * 64 + 64
    for name, _, learnables in TABLE2:  # stages do not depend on input channels or head
        assert _numel(_conv(model, name)) == learnables, name


def test_trains_one_step():
    torch.manual_seed(0)
    model = spike_resnet(num_classes=3)
    x, y = torch.randn(4, 1, 40, 40), torch.tensor([0, 1, 2, 1])
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.stem.conv1.weight.grad is not None and torch.isfinite(loss)


def test_bottleneck_residual_sum():
    """An identity block outputs relu(main(x) + x); zeroing branch2c's BN leaves relu(x)."""
    block = Bottleneck(8, (4, 4, 8)).eval()
    nn.init.zeros_(block.branch2c.bn.weight)
    nn.init.zeros_(block.branch2c.bn.bias)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_rejects_bad_configs():
    with pytest.raises(ValueError, match="identity block"):
        Bottleneck(8, (4, 4, 16))
    with pytest.raises(ValueError, match="input_size"):
        BottleneckResNet(head_pool_size=2)
    with pytest.raises(ValueError, match="stage_depths"):
        BottleneckResNet(stage_depths=(3, 3))
    with pytest.raises(ValueError, match="stage_filters"):
        BottleneckResNet(stage_filters=((32, 64),))
    with pytest.raises(ValueError, match="in_channels"):
        BottleneckResNet(in_channels=0)
    fixed = spike_resnet(head_pool_size=2, input_size=(100, 100))
    with pytest.raises(ValueError, match="input_size"):
        fixed(torch.randn(1, 1, 120, 120))
