"""LeukoNet "Stage-3 w/ aug" and "Stage-3C w/ aug" (Mourya et al. 2018, section 5, Table 2) in ONE run:
Stage-1 trained with augmentation, Stage-2 / Stage-2C without, fused by a newly trained FC layer."""
from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from safetensors.torch import load_file

from blastscope.config import list_recipes, resolve_config
from blastscope.models import list_models
from blastscope.reports.run_data import read_run
from blastscope.reports.sections import header

HYBRIDS = [("leukonet_stage3_aug", "stage2", "stage3", "Stage-3 w/ aug"),
           ("leukonet_stage3c_aug", "stage2c", "stage3c", "Stage-3C w/ aug")]


@pytest.mark.parametrize("recipe, second, fusion, row", HYBRIDS)
@pytest.mark.parametrize("profile", [None, "quick"])
def test_arms_train_exactly_as_the_single_stage_recipes(recipe, second, fusion, row, profile):
    """Invariant: the hybrid's stage arms train with the same data settings (augmentation, sampling,
    preprocessing, folds) and training settings as the paper's single-stage recipes "Stage-1 w/ aug"
    (leukonet_stage1) and "Stage-2(C) w/o aug" (leukonet_stage2/2c), so the one run is the paper's row."""
    config = resolve_config(recipe, profile)
    assert row in config.paper and "Table 2" in config.paper
    assert [a.name for a in config.arms] == ["stage1", second, fusion]
    assert config.arms[2].model == f"leukonet_{fusion}" and config.arms[2].fuse == ("stage1", second)
    stage1, stage2 = resolve_config("leukonet_stage1", profile), resolve_config(f"leukonet_{second}", profile)
    assert config.arm_data("stage1") == stage1.data and config.arm_data(second) == stage2.data
    assert config.train == stage1.train == stage2.train
    assert (config.arms[0].model, config.arms[0].kwargs) == (stage1.arms[0].model, stage1.arms[0].kwargs)
    assert (config.arms[1].model, config.arms[1].kwargs) == (stage2.arms[0].model, stage2.arms[0].kwargs)
    assert config.arm_data(fusion).augment == "sdct"  # the documented choice: the FC layer follows Stage-1


@pytest.mark.parametrize("recipe, second, fusion, row", HYBRIDS)
def test_normal_aug_overrides_give_the_table1_hybrid(recipe, second, fusion, row):
    """Table 1 "Stage-3(C) w/ Normal aug" = Stage-1 w/ Normal aug + Stage-2(C) w/o aug, by two data overrides."""
    config = resolve_config(recipe, None, ["data.augment_minority_only=true", "data.balance=oversample"])
    assert config.arm_data("stage1") == resolve_config("leukonet_stage1_normal_aug").data
    assert config.arm_data(second) == resolve_config(f"leukonet_{second}").data


def test_fusion_recipe_comments_name_shipped_recipes():
    """The w/o aug recipes point to the w/ aug ones (and every recipe a LeukoNet hybrid comment names exists)."""
    shipped = set(list_recipes())
    for recipe in ("leukonet_stage3", "leukonet_stage3c", "leukonet_stage3_aug", "leukonet_stage3c_aug"):
        text = (resources.files("blastscope.recipes") / f"{recipe}.yaml").read_text()
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        named = set(re.findall(r"\bleukonet_\w+\b", comments))
        assert named <= shipped | set(list_models()), (recipe, named - shipped)  # recipes or model ids (in --set examples)
        if not recipe.endswith("_aug"):
            assert f"{recipe}_aug" in comments


@pytest.mark.parametrize("recipe, second, fusion, row", HYBRIDS)
def test_quick_profile_runs_end_to_end(recipe, second, fusion, row, tiny_cnmc_index, tmp_path, run_quick):
    """One run trains stage1 (sdct), the second stage (none) and the fusion FC (sdct); the fused model's
    sub-networks are the stage arms' best weights; run.json and the report name each arm's augmentation."""
    out = tmp_path / "run"
    _, metrics = run_quick(recipe, tiny_cnmc_index, out)
    assert list(metrics["arms"]) == ["stage1", second, fusion]
    for k in range(2):
        fused = load_file(str(out / "arms" / fusion / f"fold_{k + 1}" / "best.safetensors"))
        for prefix, arm in (("first.", "stage1"), ("second.", second)):
            stage = load_file(str(out / "arms" / arm / f"fold_{k + 1}" / "best.safetensors"))
            assert stage and all(fused[prefix + key].equal(value) for key, value in stage.items())
    training = json.loads((out / "run.json").read_text())["training"]
    assert {a: t["augment"] for a, t in training.items()} == {"stage1": "sdct", second: "none", fusion: "sdct"}
    assert f"stage1: sdct; {second}: none; {fusion}: sdct" in header(read_run(out), "now")
