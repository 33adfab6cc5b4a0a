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
    for name in ("run.json", "folds.csv", "metrics.json", "config.yaml", "predictions.csv", "predictions_vote.csv"):
        shutil.copy(run / name, dest / name)
    for done in run.glob("arms/*/fold_*/fold.json"):
        target = dest / done.relative_to(run)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(done, target)
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
        assert rows.loc[(arm, "oof"), "balanced_accuracy"] == entry["pooled_oof"]["balanced_accuracy"]
        assert rows.loc[(arm, "oof"), "n"] == entry["pooled_oof"]["n_samples"]
    only_val = compare_runs(runs[:2], sets=["oof"])
    assert set(only_val.rows["set"]) == {"oof"}
    assert comparison_table(cmp).row_count == len(cmp.rows)


def test_fold_assignment_reads_folds_csv(tiny_run):
    f = pd.read_csv(tiny_run / "folds.csv", keep_default_na=False)
    assert fold_assignment(tiny_run) == dict(zip(f["path"], f["fold"]))


def test_unaggregated_run_is_noted(runs):
    (runs[1] / "metrics.json").unlink()
    cmp = compare_runs(runs[:2])
    assert set(cmp.rows["run"]) == {"run"} and any("no metrics.json" in n for n in cmp.notes)


def test_training_settings_and_unfinished_folds_are_marked(tiny_run, tmp_path):
    import yaml

    longer = _clone(tiny_run, tmp_path / "longer")
    config = yaml.safe_load((longer / "config.yaml").read_text())
    config["train"]["epochs"] = 40
    config["data"]["selection"] = "fold"
    (longer / "config.yaml").write_text(yaml.safe_dump(config))
    partial = _clone(tiny_run, tmp_path / "partial")
    (partial / "arms" / "sdct_net" / "fold_3" / "fold.json").unlink()
    cmp = compare_runs([tiny_run, longer, partial])
    marks = cmp.rows.groupby("run")["marks"].first()
    assert marks["run"] == ""
    assert "training differs from run" in marks["longer"] and "train.epochs 40 vs 2" in marks["longer"]
    assert "data.selection 'fold' vs 'inner'" in marks["longer"]
    assert marks["partial"] == "UNFINISHED: sdct_net fold 3"
    assert any("other settings" in n for n in cmp.notes) and any("UNFINISHED" in n for n in cmp.notes)


def test_paired_tests_match_independent_delong_and_mcnemar(tiny_run, tmp_path):
    """Reference: statsmodels' exact McNemar and the DeLong test on the voted predictions of two arms."""
    from statsmodels.stats.contingency_tables import mcnemar

    from blastscope.evaluation.statistics import delong_test
    from blastscope.reports.compare import paired_table, paired_tests

    other = _clone(tiny_run, tmp_path / "other")
    tests = paired_tests([tiny_run, other])
    row = tests[(tests["set"] == "validation") & (tests["run_a"] == "run") & (tests["arm_a"] == "sd_net")
                & (tests["run_b"] == "run") & (tests["arm_b"] == "sdct_auxnet")].iloc[0]
    votes = pd.read_csv(tiny_run / "predictions_vote.csv", keep_default_na=False)
    a = votes[votes["arm"] == "sd_net"].set_index("path").sort_index()
    b = votes[votes["arm"] == "sdct_auxnet"].set_index("path").sort_index()
    ok_a, ok_b = (a["pred"] == a["y"]).to_numpy(), (b["pred"] == b["y"]).to_numpy()
    table = [[int((ok_a & ok_b).sum()), int((ok_a & ~ok_b).sum())], [int((~ok_a & ok_b).sum()), int((~ok_a & ~ok_b).sum())]]
    assert row["cells"] == "same" and row["mcnemar_p"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    d = delong_test((a["label"] == "all").to_numpy().astype(int), a["p_all"].to_numpy(), b["p_all"].to_numpy())
    assert row["delong_p"] == pytest.approx(d["p_value"]) and row["auc_a"] == pytest.approx(d["auc_a"])
    same_arm = tests[(tests["set"] == "validation") & (tests["arm_a"] == tests["arm_b"]) & (tests["run_a"] != tests["run_b"])]
    assert len(same_arm) == 3 and (same_arm["mcnemar_p"] == 1.0).all() and (same_arm["delong_p"] == 1.0).all()
    assert paired_table(tests).row_count == len(tests)
    fewer = pd.read_csv(other / "predictions_vote.csv", keep_default_na=False).iloc[1:]
    fewer.to_csv(other / "predictions_vote.csv", index=False)
    changed = paired_tests([tiny_run, other], sets=["validation"])
    across = changed[changed["run_a"] != changed["run_b"]]
    assert across["cells"].str.startswith("not the same cells").any()
