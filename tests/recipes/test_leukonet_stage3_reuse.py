"""LeukoNet Stage-3 reuses trained stage models and never retrains them (issue 4, "Done when").

Two routes: the stage arms of the same run folder (a run resumed after its stage arms finished),
and named run folders (``ArmConfig.fuse_from``). Checked by a spy on the trainer's ``fit`` (called
for the fusion arm only, with frozen sub-models), bit-identical sub-model weights in the fused
checkpoint, and stage-arm files left byte-for-byte and timestamp untouched.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

import blastscope.evaluation.cross_validation as cv
from blastscope.config import ConfigError, resolve_config
from blastscope.evaluation.aggregate import aggregate_run
from blastscope.models.leukonet import FusionNet

FUSION_ARM = "{name: stage3, model: leukonet_stage3, fuse: [stage1, stage2], fuse_from: {stage1: %s, stage2: %s}}"


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stage_runs(tiny_cnmc_index, tiny_overrides, tmp_path_factory) -> dict[str, Path]:
    """A finished leukonet_stage1 run and a finished leukonet_stage2 run on the same tiny data and folds."""
    root = tmp_path_factory.mktemp("stages")
    runs = {}
    for arm, recipe in (("stage1", "leukonet_stage1"), ("stage2", "leukonet_stage2")):
        runs[arm] = root / arm
        cv.run_cv(resolve_config(recipe, "quick", tiny_overrides), tiny_cnmc_index, runs[arm])
    return runs


@pytest.fixture
def fit_spy(monkeypatch) -> list[tuple[str, object]]:
    calls: list[tuple[str, object]] = []
    real_fit = cv.fit

    def spy(model, *args, **kwargs):
        calls.append((kwargs.get("desc", ""), model))
        if isinstance(model, FusionNet):  # only the new FC layer may train
            assert not any(p.requires_grad for m in (model.first, model.second) for p in m.parameters())
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(cv, "fit", spy)
    return calls


def _assert_fused_weights_are(fused_run: Path, sources: dict[str, Path]) -> None:
    for k in range(2):
        fused = load_file(str(fused_run / "arms" / "stage3" / f"fold_{k + 1}" / "best.safetensors"))
        for prefix, arm in (("first.", "stage1"), ("second.", "stage2")):
            stage = load_file(str(sources[arm] / "arms" / arm / f"fold_{k + 1}" / "best.safetensors"))
            assert stage and all(fused[prefix + key].equal(value) for key, value in stage.items()), (k, arm)


def test_fusion_reuses_the_stage_arms_of_its_own_run_folder(stage_runs, tiny_cnmc_index, tiny_overrides, tmp_path, fit_spy):
    out = tmp_path / "stage3"
    for arm, run in stage_runs.items():  # the stage arms are finished in this folder (as after an interrupted run)
        shutil.copytree(run / "arms" / arm, out / "arms" / arm)
    before = _snapshot(out / "arms")
    cv.run_cv(resolve_config("leukonet_stage3", "quick", tiny_overrides), tiny_cnmc_index, out)
    assert [desc for desc, _ in fit_spy] == ["stage3 fold 1", "stage3 fold 2"]
    after = _snapshot(out / "arms")
    assert {name: after[name] for name in before} == before
    _assert_fused_weights_are(out, {"stage1": out, "stage2": out})
    assert list(aggregate_run(out)["arms"]) == ["stage1", "stage2", "stage3"]


def test_fusion_loads_stage_models_from_named_run_folders(stage_runs, tiny_cnmc_index, tiny_overrides, tmp_path, fit_spy):
    before = {arm: _snapshot(run) for arm, run in stage_runs.items()}
    arms = FUSION_ARM % (stage_runs["stage1"], stage_runs["stage2"])
    config = resolve_config("leukonet_stage3", "quick", tiny_overrides + [f"arms=[{arms}]"])
    out = tmp_path / "stage3"
    cv.run_cv(config, tiny_cnmc_index, out)
    assert [desc for desc, _ in fit_spy] == ["stage3 fold 1", "stage3 fold 2"]
    assert {arm: _snapshot(run) for arm, run in stage_runs.items()} == before
    assert sorted(p.name for p in (out / "arms").iterdir()) == ["stage3"]
    _assert_fused_weights_are(out, stage_runs)
    metrics = aggregate_run(out)
    assert list(metrics["arms"]) == ["stage3"] and "validation" in metrics["arms"]["stage3"]["vote"]
    # outside training (bundles, reports) the fused model is rebuilt from the named runs' configs
    from blastscope.engine.arm_models import load_fold_model

    model, _ = load_fold_model(out, config, "stage3", 0)
    stage1 = load_file(str(stage_runs["stage1"] / "arms" / "stage1" / "fold_1" / "best.safetensors"))
    assert all(model.state_dict()["first." + key].equal(value) for key, value in stage1.items())


def test_named_run_folder_with_other_folds_is_refused_before_training(stage_runs, tiny_cnmc_index, tiny_overrides, tmp_path, fit_spy):
    arms = FUSION_ARM % (stage_runs["stage1"], stage_runs["stage2"])
    config = resolve_config("leukonet_stage3", "quick", tiny_overrides + [f"arms=[{arms}]", "train.seed=7"])  # other folds
    with pytest.raises(cv.RunFolderError, match="other data or other folds"):
        cv.run_cv(config, tiny_cnmc_index, tmp_path / "stage3")
    assert fit_spy == []


def test_named_run_folder_without_the_arm_is_refused(stage_runs, tiny_cnmc_index, tiny_overrides, tmp_path, fit_spy):
    arms = FUSION_ARM % (stage_runs["stage2"], stage_runs["stage2"])  # stage1 looked up in the stage2 run
    with pytest.raises(cv.RunFolderError, match="has no arm 'stage1'"):
        cv.run_cv(resolve_config("leukonet_stage3", "quick", tiny_overrides + [f"arms=[{arms}]"]), tiny_cnmc_index, tmp_path / "x")
    assert fit_spy == []


@pytest.mark.parametrize("arms, message", [
    ("[{name: stage3, model: leukonet_stage3, fuse: [stage1, stage2], fuse_from: {stage9: runs/a}}]", "not in its fuse list"),
    (("[{name: stage1, model: leukonet_stage1}, {name: stage3, model: leukonet_stage3, fuse: [stage1, stage2], "
      "fuse_from: {stage1: runs/a, stage2: runs/b}}]"), "also an arm of this recipe"),
    ("[{name: stage3, model: leukonet_stage3, fuse: [stage1, stage2], fuse_from: {stage1: runs/a}}]", "must be defined before it"),
    ("[{name: stage3, model: leukonet_stage3, fuse: [stage1, stage2], fuse_from: {stage1: '', stage2: runs/b}}]", "run folder paths"),
])
def test_fuse_from_config_errors(arms, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("leukonet_stage3", overrides=[f"arms={arms}"])
