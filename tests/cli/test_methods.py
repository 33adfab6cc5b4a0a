"""`blastscope methods`: the four systems on the same subject folds of one data set, compared."""
from __future__ import annotations

import json

import pandas as pd
import yaml
from click.testing import CliRunner

from blastscope.cli import main


def test_four_methods_on_the_same_folds_with_paired_tests(tiny_synthetic, tmp_path):
    out = tmp_path / "methods"
    args = ["methods", "--profile", "quick", "--data", str(tiny_synthetic), "--out", str(out),
            "--set", "train.epochs=1", "--set", "train.max_train_batches=2", "--set", "data.folds=2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    recipes = ["sdct_auxnet", "leukonet_stage1", "spike_resnet", "leukemianet"]
    folds = [pd.read_csv(out / r / "folds.csv", keep_default_na=False) for r in recipes]
    for f in folds[1:]:  # the same cells in the same subject folds for every method
        assert f["path"].tolist() == folds[0]["path"].tolist() and f["fold"].tolist() == folds[0]["fold"].tolist()
    leukemianet = yaml.safe_load((out / "leukemianet" / "config.yaml").read_text())
    assert leukemianet["data"]["classes"] == ["hem", "all"] and leukemianet["data"]["positive"] == "all"
    assert leukemianet["data"]["synthetic"] is None  # a --data folder is not the built-in data
    summary = json.loads((out / "methods.json").read_text())
    assert summary["recipes"] == recipes and set(summary["fold_groups"].values()) == {"A"}
    pairs = pd.DataFrame(summary["paired_tests"])
    across = pairs[pairs["run_a"] != pairs["run_b"]]
    assert len(across) and (across["cells"] == "same").all() and across["mcnemar_p"].between(0, 1).all()
    assert "Paired tests on the same cells" in result.output
    again = CliRunner().invoke(main, args + ["--json"])  # finished folds are reused, not retrained
    assert again.exit_code == 0 and json.loads(again.output[again.output.index("{"):])["recipes"] == recipes
