"""Contract tests over every registered model (timm-style API of the house conventions)."""
import pytest
import torch
from torch import nn

from blastscope.models import create_model, list_models, model_info, register_model

# Spatial sizes small enough for CPU tests where a model accepts any size >= its minimum;
# models not listed run at their registered input_size.
SMALL_SIZES = {
    "base_network": 48,
    "sd_net": 48,
    "sdct_net": 48,
    "leukonet_stage1": 48,
    "leukonet_stage2": 48,
    "leukonet_stage2c": 48,
    "leukonet_stage3": 48,
    "leukonet_stage3c": 48,
    "leukonet_vgg11_od": 32,
}


def _input(name: str, batch: int = 2) -> torch.Tensor:
    channels, height, width = model_info(name).input_size
    if name in SMALL_SIZES:
        height = width = SMALL_SIZES[name]
    return torch.rand(batch, channels, height, width)


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, nn.Module)
    assert isinstance(model.num_classes, int) and isinstance(model.num_features, int)
    x = _input(name)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        torch.testing.assert_close(logits, model.forward_head(feats))
        pre = model.forward_head(feats, pre_logits=True)
    assert logits.shape == (2, model.num_classes)
    assert pre.shape == (2, model.num_features)
    assert torch.isfinite(logits).all()
    model.train()
    loss = nn.functional.cross_entropy(model(x), torch.zeros(2, dtype=torch.long))
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


@pytest.mark.parametrize("name", list_models())
def test_info_is_complete(name):
    info = model_info(name)
    assert info.name == name and len(info.input_size) == 3 and info.paper


def test_duplicate_registration_raises():
    name = list_models()[0]
    entry = model_info(name).fn

    def clash(**kwargs):
        return entry(**kwargs)

    clash.__name__ = name
    with pytest.raises(ValueError, match="already registered"):
        register_model(input_size=(3, 8, 8), paper="test")(clash)
    assert model_info(name).fn is entry


def test_unknown_model_and_kwargs_raise():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("no_such_model")
    with pytest.raises(TypeError):
        create_model("sdct_net", no_such_kwarg=1)
