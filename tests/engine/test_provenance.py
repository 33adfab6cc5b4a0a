"""Provenance: run.json says where a result came from; a bundle carries a model card."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main
from blastscope.engine.provenance import index_digest, is_synthetic

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples"


def test_run_json_records_data_digest_versions_threads_and_times(tiny_run):
    import cv2
    import numpy
    import sklearn
    import torch

    run = json.loads((tiny_run / "run.json").read_text())
    prov = run["provenance"]
    index = pd.read_csv(tiny_run / "index.csv", keep_default_na=False, dtype=str)
    assert prov["index_digest"] == index_digest(index) and prov["n_cells"] == len(index)
    assert prov["synthetic"] is True  # the tiny tree is the generator's (SYNTHETIC.json at its root)
    assert Path(prov["data_dir"]).is_dir() and all(p.startswith(prov["data_dir"]) for p in index["path"])
    assert prov["versions"] == {"blastscope": prov["versions"]["blastscope"], "python": prov["versions"]["python"],
                                "torch": torch.__version__, "numpy": numpy.__version__,
                                "scikit-learn": sklearn.__version__, "opencv": cv2.__version__}
    assert prov["threads"] >= 1 and prov["device"] == "cpu"
    assert prov["started"] <= prov["finished"] and isinstance(prov["command"], list)
    assert run["selection"] == "inner"


def test_index_digest_changes_with_any_label_or_subject():
    frame = pd.DataFrame({"path": ["a.bmp", "b.bmp"], "label": ["all", "hem"], "subject_id": ["1", "2"], "split": ["train"] * 2})
    base = index_digest(frame)
    assert index_digest(frame.assign(label=["hem", "hem"])) != base
    assert index_digest(frame.assign(subject_id=["1", "1"])) != base
    assert index_digest(frame.iloc[::-1]) != base and index_digest(frame.copy()) == base


def test_real_cells_are_not_synthetic(tmp_path):
    if not SAMPLES.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {SAMPLES}")
    assert not is_synthetic(SAMPLES / "labeled")
    (tmp_path / "SYNTHETIC.json").write_text("{}")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert is_synthetic(tmp_path / "a" / "b")


def test_cv_on_a_user_folder_does_not_claim_built_in_data(tiny_synthetic, tmp_path):
    import yaml

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic), "--out", str(out),
                                       "--set", "train.epochs=1", "--set", "data.resize=64", "--fold", "1"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["synthetic"] is None
    prov = json.loads((out / "run.json").read_text())["provenance"]
    assert prov["data_dir"] == str(Path(tiny_synthetic).resolve()) and prov["synthetic"] is True


def test_bundle_model_card_and_predict_warns_on_synthetic_training(tiny_bundle, tmp_path):
    if not SAMPLES.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {SAMPLES}")
    card = json.loads((tiny_bundle / "bundle.json").read_text())["model_card"]
    data = card["training_data"]
    assert data["synthetic"] is True and set(data["per_class"]) == {"all", "hem"}
    assert all(v["cells"] > 0 and v["subjects"] > 0 for v in data["per_class"].values())
    assert card["evaluation"]["selection"] == "inner" and card["evaluation"]["out_of_fold_label"] == "out-of-fold"
    auc = card["headline"]["out_of_fold"]["auc"]
    assert 0.0 <= auc["low"] <= auc["auc"] <= auc["high"] <= 1.0
    assert card["operating_point"]["chosen_on"] == "select" and "Not a diagnostic device" in card["intended_use"]
    cells = Path(shutil.copytree(SAMPLES / "labeled", tmp_path / "cells"))
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(cells), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC cells" in result.stderr
    assert json.loads(out.with_suffix(".json").read_text())["bundle"]["model_card"] == card
