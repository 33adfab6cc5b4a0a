"""compare: one table across runs, marking runs on other folds or other data, and image-level runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from blastscope.reports.compare import compare_runs, comparison_table, fold_assignment


def _clone(run: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("run.json", "folds.csv", "metrics.json"):
        shutil.copy(run / name, dest / name)
    return dest


@pytest.fixture
def runs(tiny_run, tmp_path):
    same = _clone(tiny_run, tmp_path / "same")
    other_folds = _clone(tiny_run, tmp_path / "other_folds")
    f = pd.read_csv(other_folds / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    moved = f.index[f["fold"] == 0][0]
    f.loc[moved, "fold"] = 1  # one cell in another fold is enough to make folds differ
    f.to_csv(other_folds / "folds.csv", index=False)
    image = _clone(tiny_run, tmp_path / "image")
    run = json.loads((image / "run.json").read_text())
    (image / "run.json").write_text(json.dumps({**run, "image_level": True, "grouping": "image"}))
    other_data = _clone(tiny_run, tmp_path / "other_data")
    g = pd.read_csv(other_data / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    g.loc[0, "path"] = "/elsewhere/UID_1_1_1_all.bmp"
    g.to_csv(other_data / "folds.csv", index=False)
    return [tiny_run, same, other_folds, image, other_data]


def test_fold_groups_and_marks(runs):
    cmp = compare_runs(runs)
    labels = ["run", "same", "other_folds", "image", "other_data"]
    assert [cmp.groups[n] for n in labels] == ["A", "A", "B", "A", "C"]
    marks = cmp.rows.groupby("run")["marks"].first()
    assert marks["run"] == "" and marks["same"] == ""
    assert marks["other_folds"] == "folds differ from run"
    assert marks["image"] == "IMAGE-LEVEL (optimistic)"
    assert marks["other_data"] == "different data from run"
    assert any("different subject folds" in n for n in cmp.notes) and any("IMAGE-LEVEL" in n for n in cmp.notes)


def test_values_come_from_metrics_json(tiny_run, runs):
    cmp = compare_runs(runs[:2])
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    rows = cmp.rows[cmp.rows["run"] == "run"].set_index(["arm", "set"])
    for arm, entry in metrics["arms"].items():
        assert rows.loc[(arm, "validation"), "weighted_f1"] == entry["vote"]["validation"]["weighted_f1"]
        assert rows.loc[(arm, "val"), "balanced_accuracy"] == entry["pooled_val"]["balanced_accuracy"]
        assert rows.loc[(arm, "val"), "n"] == entry["pooled_val"]["n_samples"]
    only_val = compare_runs(runs[:2], sets=["val"])
    assert set(only_val.rows["set"]) == {"val"}
    assert comparison_table(cmp).row_count == len(cmp.rows)


def test_fold_assignment_reads_folds_csv(tiny_run):
    f = pd.read_csv(tiny_run / "folds.csv", keep_default_na=False)
    assert fold_assignment(tiny_run) == dict(zip(f["path"], f["fold"]))


def test_unaggregated_run_is_noted(runs):
    (runs[1] / "metrics.json").unlink()
    cmp = compare_runs(runs[:2])
    assert set(cmp.rows["run"]) == {"run"} and any("no metrics.json" in n for n in cmp.notes)
