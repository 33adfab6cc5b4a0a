"""Hostile configurations: YAML aliases, names that would become paths, non-finite numbers."""
from __future__ import annotations

import time

import pytest

from blastscope.config import ConfigError, load_recipe, resolve_config

LAUGHS = "[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]]"


def test_yaml_aliases_are_refused_at_once_in_overrides_and_recipe_files(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"override of 'data.x'.*aliases"):
        resolve_config("sd_net", None, [f"data.x={LAUGHS}"])
    recipe = tmp_path / "laughs.yaml"
    recipe.write_text(f"recipe: laughs\nlol: {LAUGHS}\narms: [{{name: a, model: sd_net}}]\n")
    with pytest.raises(ConfigError, match=r"laughs.yaml.*not valid YAML.*aliases"):
        load_recipe(str(recipe))
    assert time.perf_counter() - t0 < 2.0  # refused while parsing, never expanded


@pytest.mark.parametrize("name", ["/tmp/x/ABS", "../../../x", "..", ".hidden", "a/b", "", "a" * 65, "a\\b"])
def test_arm_and_class_names_that_would_become_paths_are_refused(name):
    arms = f'arms=[{{name: "{name}", model: sd_net}}]'
    with pytest.raises(ConfigError, match="arm name .* becomes a folder or file name"):
        resolve_config("sd_net", None, [arms])
    with pytest.raises(ConfigError, match="data.classes entry .* becomes a folder or file name"):
        resolve_config("sd_net", None, [f'data.classes=["{name}", hem]', "data.positive=hem"])


def test_ordinary_names_pass():
    config = resolve_config("sd_net", None, ["data.classes=[early_malignant, pre-B, MYO.1]", "data.positive=MYO.1",
                                             "arms=[{name: stage1_aug, model: sd_net}]"])
    assert config.arms[0].name == "stage1_aug" and config.data.classes == ("early_malignant", "pre-B", "MYO.1")


@pytest.mark.parametrize("override", ["train.optimizer.lr=.nan", "train.optimizer.lr=.inf", "train.schedule.gamma=-.inf",
                                      "arms=[{name: a, source: null, model: sd_net}, {name: b, source: a, aux: {C: .nan}}]"])
def test_non_finite_numbers_are_refused_before_anything_runs(override):
    with pytest.raises(ConfigError, match="must be a finite number|must be a positive number"):
        resolve_config("sd_net", None, [override])


def test_a_loss_that_turns_non_finite_stops_the_run_naming_arm_fold_and_epoch(tiny_synthetic, tmp_path):
    from blastscope.data.readers import read_dataset
    from blastscope.evaluation.cross_validation import run_cv

    config = resolve_config("sd_net", "quick", ["train.epochs=2", "data.resize=64", "train.optimizer.lr=1.0e+30",
                                                 "train.max_train_batches=2", "data.selection=fold"])
    with pytest.raises(ValueError, match=r"sd_net fold 1, epoch \d: the training loss is not finite"):
        run_cv(config, read_dataset(tiny_synthetic), tmp_path / "run", folds=[0])
