"""Edges of cross-validation and aggregation on real run folders: the auxiliary SVM's fallback when the
CNN gets a whole class wrong, and ROC statistics with a single positive cell."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.evaluation import cross_validation as cv
from blastscope.evaluation.aggregate import aggregate_run

ARMS = "arms=[{name: cnn, model: sd_net}, {name: aux, source: cnn, aux: {theta: THETA, gamma: scale}}]"


def test_cnn_wrong_on_a_whole_class_falls_back_to_the_cnn(tiny_synthetic, tmp_path, monkeypatch):
    """Invariant: when the CNN misclassifies every training cell of a class, the SVM (eq. 3 trains it only
    on correctly classified cells) would see one class; the fold then records ``aux_fallback: true``,
    writes no SVM, and the CNN answers every cell, even at theta = 1 (SVM only): no cell is
    counted as the SVM's (Table 8) and no SVM label is recorded."""
    real = cv.predict_arrays

    def always_hem(*args, **kwargs):
        logp, feats = real(*args, **kwargs)
        return np.log(np.tile([0.8, 0.2], (len(logp), 1))), feats  # every "all" cell is wrong

    monkeypatch.setattr(cv, "predict_arrays", always_hem)
    config = resolve_config("sd_net", "quick", ["train.epochs=1", "data.resize=64", "data.folds=2", "data.selection=fold",
                                               ARMS.replace("THETA", "1.0")])
    run = tmp_path / "run"
    cv.run_cv(config, read_dataset(tiny_synthetic), run, folds=[0])
    fold = run / "arms" / "aux" / "fold_1"
    info = json.loads((fold / "fold.json").read_text())
    assert info["aux_fallback"] is True and info["svm_train_cells"] > 0 and info["theta"] == 1.0
    assert not (fold / "svm.safetensors").exists()
    preds = pd.read_csv(fold / "predictions.csv")
    assert {"oof", "validation"} <= set(preds["set"]) and (preds["label"] == "all").any()
    assert preds["svm_pred"].isna().all() and (preds["pred"] == 0).all() and set(preds["answered_by"]) == {"cnn"}
    metrics = aggregate_run(run, require_complete=False)
    assert metrics["arms"]["aux"]["folds"]["0"]["info"]["aux_fallback"] is True
    who = metrics["arms"]["aux"]["contributions"]["validation"]["0"]
    n = int((preds["set"] == "validation").sum())
    assert who["svm"]["answered"] == 0 and who["cnn"]["answered"] == n == who["total"]["answered"]


def _brute_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def _write_fold(run, k: int, rows: list[tuple[str, str, int, float]]) -> None:
    fold = run / "arms" / "a" / f"fold_{k + 1}"
    fold.mkdir(parents=True)
    frame = pd.DataFrame([{
        "arm": "a", "fold": k, "set": s, "path": f"/cells/{path}.bmp", "subject_id": path.split("_")[0],
        "label": ["hem", "all"][y], "y": y, "pred": int(p >= 0.5), "p_hem": 1 - p, "p_all": p, "answered_by": "cnn",
    } for s, path, y, p in rows])
    frame.to_csv(fold / "predictions.csv", index=False)
    (fold / "fold.json").write_text(json.dumps({"arm": "a", "fold": k}))


def test_one_positive_roc_through_aggregate_run(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "recipe": "hand", "paper": "", "class_names": ["hem", "all"], "positive": "all", "grouping": "subject",
        "fold_mode": "subject", "image_level": False, "n_folds": 2, "arms": ["a"]}))
    fold0_neg = [0.1, 0.8, 0.3, 0.7]
    fold1_neg = [0.2, 0.6, 0.75, 0.05]
    _write_fold(run, 0, [("oof", "P1_1", 1, 0.7)] + [("oof", f"N{i}_1", 0, p) for i, p in enumerate(fold0_neg)]
                + [("test", f"T{i}_1", 0, 0.3) for i in range(3)])
    _write_fold(run, 1, [("oof", f"M{i}_1", 0, p) for i, p in enumerate(fold1_neg)]
                + [("test", f"T{i}_1", 0, 0.6) for i in range(3)])
    metrics = aggregate_run(run)["arms"]["a"]

    auc0 = metrics["folds"]["0"]["oof"]["auc"]
    assert auc0["auc"] == pytest.approx(_brute_auc(np.array([0.7]), np.array(fold0_neg)))
    assert 0.0 <= auc0["low"] <= auc0["auc"] <= auc0["high"] <= 1.0
    assert metrics["folds"]["1"]["oof"]["auc"] is None  # no positive at all: no AUC, no crash
    pooled = metrics["pooled_oof"]["auc"]
    assert pooled["auc"] == pytest.approx(_brute_auc(np.array([0.7]), np.array(fold0_neg + fold1_neg)))
    assert np.isfinite([pooled["low"], pooled["high"]]).all()
    assert any("degenerate" in r.getMessage() for r in caplog.records)
    sens = metrics["pooled_oof"]["sensitivity_ci"]
    low, high = proportion_confint(sens["k"], 1, method="wilson")
    assert (sens["n"], sens["low"], sens["high"]) == (1, pytest.approx(low), pytest.approx(high))
    assert metrics["vote"]["test"]["auc"] is None


def test_a_fold_model_that_predicts_one_class_is_flagged(tmp_path):
    """Invariant: a fold model whose every scored cell gets the same label, although the cells hold two
    classes, is listed in ``collapsed`` and the tables print a warning naming it; a fold that
    predicts both classes is not."""
    from rich.console import Console

    from blastscope.reports.tables import print_run_tables

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "recipe": "hand", "paper": "", "class_names": ["hem", "all"], "positive": "all", "grouping": "subject",
        "fold_mode": "subject", "image_level": False, "n_folds": 2, "arms": ["a"]}))
    _write_fold(run, 0, [("oof", f"P{i}_1", i % 2, 0.9) for i in range(6)])  # always "all"
    _write_fold(run, 1, [("oof", f"Q{i}_1", i % 2, 0.2 + 0.6 * (i % 2)) for i in range(6)])  # right every time
    metrics = aggregate_run(run)
    assert metrics["arms"]["a"]["collapsed"] == [0]
    console = Console(record=True, width=200)
    print_run_tables(metrics, console)
    assert "a: Model1 predicted ONE class for every cell it scored (collapsed)" in console.export_text()


def test_changed_pixels_under_unchanged_names_are_refused_on_resume(tiny_synthetic, tmp_path):
    """After fold 1, swapping two images' contents (names kept) must not let folds 2-3 train on the new
    pixels beside a fold 1 trained on the old: the run refuses to continue, naming the files."""
    import shutil

    data = Path(shutil.copytree(tiny_synthetic, tmp_path / "data"))
    config = resolve_config("sd_net", "quick", ["train.epochs=1", "data.resize=64", "train.max_train_batches=1"])
    run = tmp_path / "run"
    cv.run_cv(config, read_dataset(data), run, folds=[0])
    assert (run / "content.csv").exists()
    a, b = sorted(data.glob("training_data/fold_0/all/*.bmp"))[:2]
    pa, pb = a.read_bytes(), b.read_bytes()
    a.write_bytes(pb)
    b.write_bytes(pa)
    with pytest.raises(cv.RunFolderError, match=r"2 image file\(s\) changed content since this run started") as e:
        cv.run_cv(config, read_dataset(data), run, folds=[1])
    assert a.name in str(e.value) and not (run / "arms" / "sd_net" / "fold_2").exists()
    a.write_bytes(pa)
    b.write_bytes(pb)
    cv.run_cv(config, read_dataset(data), run, folds=[1])  # the original pixels: the run continues
    assert (run / "arms" / "sd_net" / "fold_2" / "fold.json").exists()
