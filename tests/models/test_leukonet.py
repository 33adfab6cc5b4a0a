"""Tests for blastscope.models.leukonet (Mourya et al. 2018, sections 4-5)."""
import pytest
import torch
from torch import nn

from blastscope.layers.activations import PTELU
from blastscope.layers.dct import EnergyThresholdDCT
from blastscope.models import create_model
from blastscope.models.leukonet import VGG, ChannelConcat, FusionNet


def test_stage2c_input_has_six_channels_sd_then_dct():
    model = create_model("leukonet_stage2c").eval()
    conv1 = model.backbone.features.conv1[0]
    assert conv1.in_channels == 6
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        front = model.front(x)
        sd = model.front[0](x)
    assert front.shape == (2, 6, 40, 40)
    torch.testing.assert_close(front[:, :3], sd)
    torch.testing.assert_close(front[:, 3:], EnergyThresholdDCT(0.95)(sd))


def test_stage2_uses_energy_threshold_dct_with_configurable_energy():
    model = create_model("leukonet_stage2", energy=0.8)
    dct = model.front[1]
    assert isinstance(dct, EnergyThresholdDCT) and dct.energy == 0.8
    assert model.backbone.features.conv1[0].in_channels == 3


@pytest.mark.parametrize("name", ["leukonet_stage1", "leukonet_stage2", "leukonet_stage2c"])
@pytest.mark.parametrize("activation, cls", [("prelu", nn.PReLU), ("ptelu", PTELU)])
def test_stage_activation_kwarg(name, activation, cls):
    model = create_model(name, activation=activation)
    assert sum(isinstance(m, cls) for m in model.modules()) == 6


def _fusion() -> FusionNet:
    torch.manual_seed(0)
    return create_model(
        "leukonet_stage3c", first=create_model("leukonet_stage1"), second=create_model("leukonet_stage2c")
    )


def test_fusion_one_optimizer_step_changes_only_the_new_linear():
    """Invariant: sub-models (weights and BN statistics) stay bit-identical; only fc moves."""
    model = _fusion()
    model.train()
    assert not model.first.training and not model.second.training and model.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    x, y = torch.rand(4, 3, 40, 40), torch.tensor([0, 1, 0, 1])
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}
    assert all(not p.requires_grad for p in model.first.parameters())
    assert all(not p.requires_grad for p in model.second.parameters())


def test_fusion_features_concatenate_sub_model_pre_logits():
    model = _fusion().eval()
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        feats = model.forward_features(x)
        a = model.first.forward_head(model.first.forward_features(x), pre_logits=True)
        b = model.second.forward_head(model.second.forward_features(x), pre_logits=True)
    torch.testing.assert_close(feats, torch.cat([a, b], dim=1))
    assert model.num_features == 8192 and feats.shape == (2, 8192)


def test_stage3_builds_stage1_and_stage2_when_not_given():
    model = create_model("leukonet_stage3", activation="prelu")
    assert isinstance(model.second.front[1], EnergyThresholdDCT)
    assert model.second.backbone.features.conv1[0].in_channels == 3
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) == 12


def test_vgg11_od_is_vgg11_bn_with_gap_head():
    model = create_model("leukonet_vgg11_od")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8
    assert model.num_features == 512 and sum(p.numel() for p in model.parameters() if p.requires_grad) == (
        sum(c.weight.numel() + c.bias.numel() + 2 * c.out_channels for c in convs) + 512 * 2 + 2
    )
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.mean(dim=(2, 3)))
    assert not any(p.requires_grad for p in model.front.parameters())  # OD has no parameters


def test_validation_errors():
    with pytest.raises(ValueError, match="num_classes"):
        FusionNet(create_model("leukonet_stage1"), create_model("leukonet_stage1"), num_classes=0)
    with pytest.raises(ValueError, match="first"):
        FusionNet(nn.Linear(2, 2), create_model("leukonet_stage1"))
    with pytest.raises(ValueError, match="branches"):
        ChannelConcat(nn.Identity())
    with pytest.raises(ValueError, match="cfg"):
        VGG(cfg=("M",))
