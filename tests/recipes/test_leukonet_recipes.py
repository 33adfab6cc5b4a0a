"""LeukoNet recipes (Mourya et al. 2018): the paper's protocol resolves, every recipe has a small
quick profile, and the six recipes of issue 4 run end to end on a tiny synthetic C-NMC tree.
The Table 1 variant recipes run in test_leukonet_variant_recipes.py."""
from __future__ import annotations

import pytest

from blastscope.config import list_recipes, resolve_config

LEUKONET = [r for r in list_recipes() if r.startswith("leukonet")]
CORE = ["leukonet_stage1", "leukonet_stage2", "leukonet_stage2c", "leukonet_vgg11_od"]


def test_all_issue_recipes_are_shipped():
    assert set(CORE) | {"leukonet_stage3", "leukonet_stage3c"} <= set(LEUKONET)


@pytest.mark.parametrize("recipe", LEUKONET)
def test_paper_protocol(recipe):
    """Section 3: 4 subject-level folds, cells centred on 350 x 350 and not downsized, two classes."""
    config = resolve_config(recipe)
    assert (config.data.folds, config.data.fold_mode, config.data.grouping) == (4, "subject", "subject")
    assert (config.data.canvas, config.data.resize) == (350, None)
    assert set(config.data.classes) == {"hem", "all"} and config.data.positive == "all"
    assert config.data.augment in ("sdct", "none")


@pytest.mark.parametrize("recipe", LEUKONET)
def test_quick_profile_is_small(recipe):
    config = resolve_config(recipe, "quick")
    assert config.data.synthetic == "quick" and config.data.folds <= 3
    assert config.data.resize is not None and config.data.resize <= 160 and config.train.epochs <= 15


def test_augmentation_follows_the_paper():
    """Stage-1 is reported w/ aug; Stage-2/2C, the OD VGG-11 baseline and the fusion recipes w/o aug."""
    assert resolve_config("leukonet_stage1").data.augment == "sdct"
    for recipe in ("leukonet_stage2", "leukonet_stage2c", "leukonet_vgg11_od", "leukonet_stage3", "leukonet_stage3c"):
        config = resolve_config(recipe)
        assert config.data.augment == "none" and config.data.balance == "none", recipe


def test_table1_variants_differ_from_their_base_only_where_the_paper_says():
    stage1 = resolve_config("leukonet_stage1")
    normal = resolve_config("leukonet_stage1_normal_aug")
    assert not stage1.data.augment_minority_only and stage1.data.balance == "none"
    assert normal.data.augment_minority_only and normal.data.balance == "oversample" and normal.data.augment == "sdct"
    assert normal.train == stage1.train and normal.arms[0].model == "leukonet_stage1"
    for base, aug in (("stage1", "sdct"), ("stage2c", "none")):
        for act in ("prelu", "ptelu"):
            config = resolve_config(f"leukonet_{base}_{act}")
            (arm,) = config.arms
            assert arm.model == f"leukonet_{base}" and arm.kwargs == {"activation": act}
            assert config.data.augment == aug and config.train == stage1.train


@pytest.mark.parametrize("recipe, first, second", [("leukonet_stage3", "stage1", "stage2"), ("leukonet_stage3c", "stage1", "stage2c")])
def test_fusion_recipes_fuse_their_own_stage_arms(recipe, first, second):
    config = resolve_config(recipe)
    fusion = config.arms[-1]
    assert [a.name for a in config.arms] == [first, second, fusion.name]
    assert fusion.model == f"leukonet_{fusion.name}" and fusion.fuse == (first, second) and fusion.fuse_from is None
    assert {a.name: a.model for a in config.arms[:2]} == {first: f"leukonet_{first}", second: f"leukonet_{second}"}


@pytest.mark.parametrize("recipe", CORE)
def test_quick_profile_runs_end_to_end(recipe, tiny_cnmc_index, tmp_path, run_quick):
    extra = ["data.resize=32"] if "vgg" in recipe else []  # VGG-11's five pools need >= 32 px
    config, metrics = run_quick(recipe, tiny_cnmc_index, tmp_path / "run", *extra)
    assert set(metrics["arms"]) == {a.name for a in config.arms}
    assert "validation" in metrics["arms"][config.arms[0].name]["vote"]


def test_stage_quick_profiles_can_be_fused():
    """Invariant: every Basic-Network quick profile has the same data, folds and input size, so
    quick stage runs can feed a fusion run through fuse_from."""
    keys = {r: (c.data.synthetic, c.data.folds, c.data.canvas, c.data.resize, c.data.classes, c.train.seed)
            for r in LEUKONET if "vgg" not in r for c in [resolve_config(r, "quick")]}
    assert len(set(keys.values())) == 1, keys
