"""Per-arm training overrides in the run configuration: ``ArmConfig.augment``,
``augment_minority_only`` and ``balance`` (None = inherit ``data.<key>``), ``RunConfig.arm_data``
and ``arm_training``: parsing, validation naming the arm, and the round trips through
``--set 'arms=[...]'`` and ``save_config``/``read_config``."""
from __future__ import annotations

import pytest
import yaml

from blastscope.config import (
    ConfigError,
    arm_training,
    config_from_dict,
    config_to_dict,
    read_config,
    resolve_config,
    save_config,
)
from blastscope.transforms.factory import TRANSFORMS

ARMS = ("arms=[{name: a, model: leukonet_stage1}, {name: b, model: leukonet_stage2c, augment: none, "
        "augment_minority_only: false, balance: oversample}, {name: c, model: leukonet_stage3c, fuse: [a, b], "
        "augment_minority_only: true}]")


def test_overrides_parse_from_set_and_inherit_the_rest():
    config = resolve_config("leukonet_stage1", None, ["data.augment=sdct", "data.balance=none", ARMS])
    a, b, c = config.arms
    assert (a.augment, a.augment_minority_only, a.balance) == (None, None, None)
    assert (b.augment, b.augment_minority_only, b.balance) == ("none", False, "oversample")
    assert (c.augment, c.augment_minority_only, c.balance) == (None, True, None)
    data = config.data
    assert config.arm_data("a") == data  # nothing overridden: exactly data
    eff_b, eff_c = config.arm_data("b"), config.arm_data(c)
    assert (eff_b.augment, eff_b.augment_minority_only, eff_b.balance) == ("none", False, "oversample")
    assert (eff_c.augment, eff_c.augment_minority_only, eff_c.balance) == ("sdct", True, "none")
    # everything else is the run's data settings
    for eff in (eff_b, eff_c):
        assert (eff.classes, eff.canvas, eff.resize, eff.folds) == (data.classes, data.canvas, data.resize, data.folds)
    assert arm_training(config) == {
        "a": {"augment": "sdct", "augment_minority_only": False, "balance": "none"},
        "b": {"augment": "none", "augment_minority_only": False, "balance": "oversample"},
        "c": {"augment": "sdct", "augment_minority_only": True, "balance": "none"},
    }
    with pytest.raises(ConfigError, match="no arm 'zz'"):
        config.arm_data("zz")


def test_inheritance_follows_data_overrides():
    """Invariant: an arm without overrides always trains with the current data.* (whatever order the
    overrides come in); an arm with an override keeps it whatever data.* says."""
    for order in ([ARMS, "data.augment=leukemianet"], ["data.augment=leukemianet", ARMS]):
        config = resolve_config("leukonet_stage1", None, order)
        assert config.arm_data("a").augment == "leukemianet" and config.arm_data("b").augment == "none"


def test_save_and_read_round_trip(tmp_path):
    config = resolve_config("leukonet_stage3c_aug", "quick", [ARMS.replace("leukonet_stage1}", "leukonet_stage1, augment: spike}")])
    path = tmp_path / "config.yaml"
    save_config(config, path)
    saved = yaml.safe_load(path.read_text())
    assert [(a["name"], a["augment"], a["augment_minority_only"], a["balance"]) for a in saved["arms"]] == [
        ("a", "spike", None, None), ("b", "none", False, "oversample"), ("c", None, True, None)]
    back = read_config(path)
    assert back == config and config_to_dict(back) == config_to_dict(config)


def test_config_yaml_written_before_the_overrides_existed_reads_back_equal():
    """Invariant: a run folder's config.yaml without the new arm keys resolves to the same config as
    today's (inherit everything), so such runs still resume (run_cv compares the two)."""
    config = resolve_config("leukonet_stage3c", "quick")
    old = config_to_dict(config)
    for arm in old["arms"]:
        for key in ("augment", "augment_minority_only", "balance"):
            del arm[key]
    assert config_to_dict(config_from_dict(old)) == config_to_dict(config)


def test_unknown_augmentation_names_the_arm_and_every_known_name():
    arms = "arms=[{name: stage1, model: leukonet_stage1}, {name: odd, model: leukonet_stage1, augment: sdtc}]"
    with pytest.raises(ValueError) as info:
        resolve_config("leukonet_stage1", None, [arms])
    message = str(info.value)
    assert "arms[odd].augment" in message and "'sdtc'" in message
    assert all(name in message for name in TRANSFORMS)
    with pytest.raises(ConfigError, match=r"data\.augment .*'sdtc'"):
        resolve_config("leukonet_stage1", None, ["data.augment=sdtc"])


@pytest.mark.parametrize("arm, match", [
    ("{name: x, model: sd_net, augment: [sdct]}", r"arms\[x\]\.augment must be one of"),
    ("{name: x, model: sd_net, augment: 3}", r"arms\[x\]\.augment must be one of"),
    ("{name: x, model: sd_net, augment_minority_only: 'yes please'}", r"arms\[x\]\.augment_minority_only must be true or false"),
    ("{name: x, model: sd_net, augment_minority_only: 1}", r"arms\[x\]\.augment_minority_only must be true or false"),
    ("{name: x, model: sd_net, balance: undersample}", r"arms\[x\]\.balance must be one of \['oversample', 'none'\]"),
    ("{name: x, model: sd_net, balance: {a: 1}}", r"arms\[x\]\.balance must be one of"),
])
def test_bad_override_values_are_named(arm, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config("sd_net", None, [f"arms=[{arm}]"])


def test_auxiliary_arm_takes_no_training_override():
    arms = "arms=[{name: cnn, model: sdct_net}, {name: aux, source: cnn, aux: {theta: 0.9}, augment: none}]"
    with pytest.raises(ConfigError, match=r"arms\[aux\] is an auxiliary SVM arm.*\['augment'\]"):
        resolve_config("sdct_auxnet", None, [arms])
    config = resolve_config("sdct_auxnet")
    assert set(arm_training(config)) == {a.name for a in config.arms if a.aux is None}  # aux arms left out


@pytest.mark.parametrize("key", ["augment", "augment_minority_only", "balance"])
def test_data_settings_cannot_be_null(key):
    with pytest.raises(ConfigError, match=f"data.{key} must be set"):
        resolve_config("sd_net", None, [f"data.{key}=null"])


def test_arms_taken_from_other_run_folders_are_recorded_as_such():
    arms = "arms=[{name: stage3c, model: leukonet_stage3c, fuse: [stage1, stage2c], fuse_from: {stage1: runs/s1, stage2c: runs/s2c}}]"
    config = resolve_config("leukonet_stage3c_aug", None, [arms])
    assert arm_training(config) == {"stage1": {"run_folder": "runs/s1"}, "stage2c": {"run_folder": "runs/s2c"},
                                    "stage3c": {"augment": "sdct", "augment_minority_only": False, "balance": "none"}}


def test_an_arm_learning_rate_overrides_train_lr_for_that_arm_only():
    config = resolve_config("sdct_auxnet", "cpu", [])
    by_name = {a.name: a for a in config.arms}
    assert by_name["sdct_net"].lr == 0.05 and by_name["sd_net"].lr is None
    assert config.arm_train(by_name["sdct_net"]).optimizer.lr == 0.05
    assert config.arm_train(by_name["sd_net"]) is config.train and config.train.optimizer.lr == 0.01
    assert config.arm_train(by_name["sdct_net"]).optimizer.momentum == config.train.optimizer.momentum
    training = arm_training(config)
    assert training["sdct_net"]["lr"] == 0.05 and "lr" not in training["sd_net"]
    assert "sdct_auxnet" not in training


@pytest.mark.parametrize("arms,match", [
    ("arms=[{name: a, model: sd_net, lr: 0}]", "arm 'a': lr must be a positive number"),
    ("arms=[{name: a, model: sd_net, lr: fast}]", "arm 'a': lr must be a positive number"),
    ("arms=[{name: a, model: sdct_net}, {name: b, source: a, aux: {C: 1.0}, lr: 0.1}]", "arm 'b': lr must be a positive number on an arm that trains"),
])
def test_bad_arm_learning_rates_are_refused_naming_the_arm(arms, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config("sdct_auxnet", "quick", [arms])
