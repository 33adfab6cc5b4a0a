"""Spike-PCA-ResNet Table 5 renderer: rows mirror metrics.json, tables print, the cv hook fires for spike recipes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from blastscope.evaluation.aggregate import aggregate_run
from blastscope.reports.spike_table import print_spike_tables, spike_table_rows
from blastscope.reports.tables import print_run_tables


def _fake_run(root: Path, classes: list[str], positive: str, held_out: bool, image_level: bool = False,
              recipe: str = "spike_resnet", seed: int = 0) -> dict:
    """Write a finished run folder with random predictions of 3 fold models and aggregate it."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    test_y = rng.integers(0, k, size=30)
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({
        "recipe": recipe, "paper": "", "class_names": classes, "positive": positive, "grouping": "image" if image_level else "subject",
        "fold_mode": "image" if image_level else "subject", "image_level": image_level, "n_folds": 3, "arms": ["spike_resnet"]}))
    for fold in range(3):
        val_y = rng.integers(0, k, size=24)
        val_y[:k] = np.arange(k)
        parts = [("oof", val_y, [f"v{fold}/{i}" for i in range(24)])]
        if held_out:
            parts.append(("test", test_y, [f"t/{i}" for i in range(30)]))
        frames = []
        for set_name, y, paths in parts:
            logits = rng.normal(size=(len(y), k))
            logits[np.arange(len(y)), y] += 1.5
            p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            f = pd.DataFrame({"arm": "spike_resnet", "fold": fold, "set": set_name, "path": paths, "subject_id": paths,
                              "label": [classes[c] for c in y], "y": y, "pred": p.argmax(1)})
            for i, c in enumerate(classes):
                f[f"p_{c}"] = p[:, i]
            f["answered_by"] = "cnn"
            frames.append(f)
        d = root / "arms" / "spike_resnet" / f"fold_{fold + 1}"
        d.mkdir(parents=True)
        pd.concat(frames).to_csv(d / "predictions.csv", index=False)
        (d / "fold.json").write_text(json.dumps({"arm": "spike_resnet", "fold": fold}))
    return aggregate_run(root)


def _render(metrics: dict, fn=print_spike_tables) -> str:
    console = Console(record=True, width=220)
    fn(metrics, console)
    return console.export_text()


def test_binary_rows_mirror_metrics(tmp_path) -> None:
    metrics = _fake_run(tmp_path / "run", ["hem", "all"], "all", held_out=True)
    entry = metrics["arms"]["spike_resnet"]
    rows = spike_table_rows(metrics)
    argmax_test = {r["class"]: r for r in rows if r["decision"] == "argmax" and r["set"] == "test"}
    assert list(argmax_test) == ["hem", "all", "average"]
    vote = entry["vote"]["test"]
    assert argmax_test["all"]["sensitivity"] == vote["per_class"]["all"]["recall"]
    assert argmax_test["all"]["sensitivity_low"] == vote["sensitivity_ci"]["low"]
    assert argmax_test["hem"]["sensitivity"] == vote["per_class"]["all"]["specificity"]  # two classes mirror
    assert argmax_test["average"]["accuracy"] == vote["accuracy"]
    assert argmax_test["average"]["accuracy_high"] == vote["accuracy_ci"]["high"]
    assert argmax_test["average"]["f1"] == vote["macro"]["f1"]
    assert argmax_test["average"]["auc"] == vote["auc"]["auc"]
    op = {r["class"]: r for r in rows if r["decision"] == "operating_point" and r["set"] == "test"}
    assert op["all"]["threshold"] == entry["operating_point"]["vote_threshold"]
    assert op["all"]["sensitivity"] == entry["operating_point"]["vote"]["test"]["per_class"]["all"]["recall"]
    pooled = [r for r in rows if r["decision"] == "operating_point" and r["source"] == "pooled_out_of_fold"]
    assert pooled[-1]["accuracy"] == entry["operating_point"]["pooled_oof"]["accuracy"]


def test_multiclass_rows_use_macro_auc_and_binary_operating_point(tmp_path) -> None:
    classes = ["benign", "early_malignant", "pre_malignant", "pro_malignant"]
    metrics = _fake_run(tmp_path / "run", classes, "early_malignant", held_out=False, image_level=True)
    rows = spike_table_rows(metrics)
    argmax_val = [r for r in rows if r["decision"] == "argmax"]
    assert [r["class"] for r in argmax_val] == classes + ["average"]
    pooled = metrics["arms"]["spike_resnet"]["pooled_oof"]
    assert argmax_val[-1]["auc"] == pooled["macro_auc"] and argmax_val[-1]["auc_low"] is None
    assert argmax_val[2]["auc"] == pooled["per_class_ci"]["pre_malignant"]["auc"]["auc"]
    op_classes = [r["class"] for r in rows if r["decision"] == "operating_point"]
    assert op_classes == ["not early_malignant", "early_malignant", "average"]
    text = _render(metrics)
    assert "IMAGE-LEVEL" in text and "high-sensitivity operating point for 'early_malignant'" in text


def test_tables_print_values_and_fold_thresholds(tmp_path) -> None:
    metrics = _fake_run(tmp_path / "run", ["hem", "all"], "all", held_out=True, seed=1)
    text = _render(metrics)
    vote = metrics["arms"]["spike_resnet"]["vote"]["test"]
    assert "Table 5 layout, argmax decision (subject-level folds)" in text
    assert f"{100 * vote['accuracy']:.2f} [" in text
    assert f"{vote['auc']['auc']:.4f}" in text
    op = metrics["arms"]["spike_resnet"]["operating_point"]
    for k in range(3):
        assert f"{op['folds'][str(k)]['threshold']:.4f}" in text
    assert f"{op['vote_threshold']:.4f}" in text


@pytest.mark.parametrize(("recipe", "shown"), [("spike_resnet", True), ("sdct_auxnet", False)])
def test_run_tables_hook_only_for_spike_recipes(tmp_path, recipe: str, shown: bool) -> None:
    metrics = _fake_run(tmp_path / "run", ["hem", "all"], "all", held_out=True, recipe=recipe)
    assert ("Table 5 layout" in _render(metrics, print_run_tables)) is shown


def test_report_module_does_not_import_torch() -> None:
    """Invariant: reports read files only; importing the renderer must not load torch."""
    code = "import sys, blastscope.reports.spike_table, blastscope.reports.tables; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
