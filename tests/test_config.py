"""Typed, frozen configuration: recipes, profiles, overrides, and errors that name the key."""
from __future__ import annotations

import dataclasses

import pytest

from blastscope.config import ConfigError, config_from_dict, config_to_dict, list_recipes, read_config, resolve_config, save_config


def test_recipes_resolve_with_their_profiles():
    for name in list_recipes():
        config = resolve_config(name)
        assert config.arms and config.recipe == name
        if "quick" in (__import__("blastscope.config", fromlist=["load_recipe"]).load_recipe(name).get("profiles") or {}):
            quick = resolve_config(name, "quick")
            assert quick.profile == "quick" and quick.train.epochs <= config.train.epochs


def test_paper_settings_of_sdct_auxnet():
    c = resolve_config("sdct_auxnet")
    assert (c.train.epochs, c.train.batch_size, c.data.folds, c.data.canvas) == (130, 64, 7, 350)
    assert (c.train.optimizer.lr, c.train.optimizer.momentum, c.train.optimizer.weight_decay) == (1e-3, 0.9, 1e-2)
    aux = next(a for a in c.arms if a.aux).aux
    assert (aux.C, aux.gamma, aux.theta) == (10.0, 100.0, 0.9)
    code = resolve_config("sdct_auxnet_code")
    assert code.train.epochs == 120 and code.train.schedule.milestones == (70, 105, 115)


def test_overrides_and_frozen():
    c = resolve_config("sdct_auxnet", "quick", ["train.seed=7", "data.folds=4", "train.optimizer.lr=0.5"])
    assert (c.train.seed, c.data.folds, c.train.optimizer.lr) == (7, 4, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.train.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("override,match", [
    ("train.epochz=3", r"unknown key\(s\) \['epochz'\] in train"),
    ("data.positive=aml", "data.positive must be one of"),
    ("data.fold_mode=image", "needs the explicit data.grouping=image"),
    ("train.optimizer.name=rmsprop", "sgd or adam"),
])
def test_bad_values_are_named(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config("sdct_auxnet", None, [override])


def test_unknown_recipe_and_profile():
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        resolve_config("nope")
    with pytest.raises(ConfigError, match="no profile 'huge'"):
        resolve_config("sdct_auxnet", "huge")


def test_arm_references_must_exist():
    raw = config_to_dict(resolve_config("sdct_auxnet"))
    raw["arms"][2]["source"] = "missing"
    with pytest.raises(ConfigError, match="uses arm 'missing'"):
        config_from_dict(raw)


def test_save_and_read_round_trip(tmp_path):
    c = resolve_config("sdct_auxnet", "quick")
    save_config(c, tmp_path / "config.yaml")
    assert read_config(tmp_path / "config.yaml") == c


def test_every_recipe_header_lists_its_differences_from_the_paper():
    """Each shipped recipe opens with comment lines, among them "Differences from the paper" followed
    by one "# - ..." line per difference, and the inner selection protocol is always one of them."""
    from importlib import resources

    from blastscope.config import list_recipes

    for name in list_recipes():
        text = (resources.files("blastscope.recipes") / f"{name}.yaml").read_text()
        header = [line for line in text.splitlines() if line.startswith("#")]
        assert any("Differences from the paper" in line for line in header), name
        start = next(i for i, line in enumerate(header) if "Differences from the paper" in line)
        listed = [line for line in header[start + 1:] if line.startswith("# - ")]
        assert listed and any("selection" in line for line in listed), name
