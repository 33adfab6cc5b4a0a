"""Recipe arms as models outside training: specs (aux and fusion arms), building, loading fold weights."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from blastscope.config import config_from_dict, read_config
from blastscope.engine.arm_models import build_model, load_fold_model, model_spec


def test_aux_arm_uses_its_source_cnn(tiny_run):
    config = read_config(tiny_run / "config.yaml")
    arms = {a.name: a for a in config.arms}
    assert model_spec(config, arms["sdct_auxnet"]) == {"arm": "sdct_net", "id": "sdct_net", "kwargs": {}}


def test_fusion_arm_spec_builds_the_whole_model():
    config = config_from_dict({"recipe": "t", "arms": [
        {"name": "s1", "model": "leukonet_stage1"},
        {"name": "s2", "model": "leukonet_stage2", "kwargs": {"activation": "prelu"}},
        {"name": "s3", "model": "leukonet_stage3", "fuse": ["s1", "s2"]}]})
    spec = model_spec(config, config.arms[2])
    assert spec["fuse"]["second"] == {"arm": "s2", "id": "leukonet_stage2", "kwargs": {"activation": "prelu"}}
    model = build_model(spec, num_classes=2)
    keys = model.state_dict().keys()
    assert any(k.startswith("first.") for k in keys) and any(k.startswith("second.") for k in keys)
    assert any(isinstance(m, torch.nn.PReLU) for m in model.second.modules())


def test_load_fold_model_has_the_runs_weights(tiny_run):
    config = read_config(tiny_run / "config.yaml")
    model, model_input = load_fold_model(tiny_run, config, "sdct_auxnet", 2)
    stored = load_file(str(tiny_run / "arms" / "sdct_net" / "fold_3" / "best.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in stored.items()) and not model.training
    assert model_input(torch.zeros(1, 8, 8, 3, dtype=torch.uint8)).shape == (1, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="fold 9 is not trained"):
        load_fold_model(tiny_run, config, "sd_net", 8)
