"""The report header names each arm's training augmentation and sampling (run.json ``training``, or
for older run folders the same derived from config.yaml)."""
from __future__ import annotations

import json

import pytest

from blastscope.config import arm_training, resolve_config, save_config
from blastscope.reports.run_data import read_run
from blastscope.reports.sections import header, training_text


def _fake_run(tmp_path, config, with_training: bool):
    run = tmp_path / "run"
    run.mkdir()
    info = {"recipe": config.recipe, "paper": config.paper, "class_names": list(config.data.classes),
            "positive": config.data.positive, "n_folds": 2, "arms": [a.name for a in config.arms]}
    if with_training:
        info["training"] = arm_training(config)
    (run / "run.json").write_text(json.dumps(info))
    save_config(config, run / "config.yaml")
    return run


@pytest.mark.parametrize("with_training", [True, False])
def test_header_names_every_arms_augmentation(tmp_path, with_training):
    """Invariant: the same line whether it comes from run.json or (older runs) from config.yaml."""
    arms = ("arms=[{name: s1, model: leukonet_stage1, augment_minority_only: true, balance: oversample}, "
            "{name: s2c, model: leukonet_stage2c, augment: none, balance: oversample}, "
            "{name: s3c, model: leukonet_stage3c, fuse: [s1, s2c]}]")
    config = resolve_config("leukonet_stage3c_aug", None, [arms])
    data = read_run(_fake_run(tmp_path, config, with_training))
    line = "s1: sdct (minority class only, oversampled); s2c: none (oversampled); s3c: sdct"
    assert training_text(data) == line
    assert f"<td class=\"\">training augmentation</td><td class=\"\">{line}</td>" in header(data, "now")


def test_aux_arms_are_left_out_and_fuse_from_arms_point_to_their_folder(tmp_path):
    aux = resolve_config("sdct_auxnet")
    assert training_text(read_run(_fake_run(tmp_path, aux, True))) == "sd_net: sdct (oversampled); sdct_net: sdct (oversampled)"
    arms = "arms=[{name: stage3c, model: leukonet_stage3c, fuse: [stage1, stage2c], fuse_from: {stage1: runs/s1, stage2c: runs/s2c}}]"
    fused = resolve_config("leukonet_stage3c_aug", None, [arms])
    (tmp_path / "b").mkdir()
    assert training_text(read_run(_fake_run(tmp_path / "b", fused, True))) == (
        "stage1: as trained in run folder runs/s1; stage2c: as trained in run folder runs/s2c; stage3c: sdct")


def test_unreadable_config_leaves_the_row_out(tmp_path):
    run = _fake_run(tmp_path, resolve_config("leukonet_stage1"), False)
    (run / "config.yaml").write_text("data: [not, a, mapping\n")
    data = read_run(run)
    assert training_text(data) == "" and "training augmentation" not in header(data, "now")
