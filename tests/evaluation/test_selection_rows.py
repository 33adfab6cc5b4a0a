"""Which cells each choice of a fold reads: nothing fitted or chosen sees the cells it is scored on.

The test records the actual arrays handed to the trainer (best epoch), to the SVM's ``fit`` and to
its Platt ``calibrate``, maps every row back to the run's index through the image bytes (and the
spectral features the CNN computed for them), and checks them against the fold's roles.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

import blastscope.evaluation.cross_validation as cv
from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.estimators.svm_head import SpectralSVM
from blastscope.evaluation.aggregate import aggregate_run
from blastscope.evaluation.operating_point import threshold_for_sensitivity

OVERRIDES = ["train.epochs=2", "data.resize=64", "train.batch_size=8"]


def _key(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture
def recorded(tiny_synthetic, tmp_path, monkeypatch, request):
    selection, _, svm_cells = request.param.partition("+")
    calls: dict[str, list] = {"fit": [], "svm_fit": [], "calibrate": [], "features": {}}
    real_fit, real_predict = cv.fit, cv.predict_arrays
    real_svm_fit, real_calibrate = SpectralSVM.fit, SpectralSVM.calibrate

    def fit(model, train_images, train_labels, val_images, val_labels, *args, **kwargs):
        calls["fit"].append(([_key(x) for x in train_images], [_key(x) for x in val_images]))
        return real_fit(model, train_images, train_labels, val_images, val_labels, *args, **kwargs)

    def predict(model, images, *args, **kwargs):
        logp, feats = real_predict(model, images, *args, **kwargs)
        if feats is not None:
            for x, f in zip(images, feats):
                calls["features"][_key(np.asarray(f, dtype=np.float64))] = _key(x)
            # A 2-epoch CNN on the tiny set may call every cell one class, leaving the SVM (eq. 3: correct
            # cells only) one class to fit; CNN answers drawn per image keep both classes among the correct.
            p = np.stack([np.random.default_rng(int(_key(x)[:8], 16)).dirichlet([1.0, 1.0]) for x in images])
            logp = np.log(p)
        return logp, feats

    def svm_fit(self, X, y):
        calls["svm_fit"].append([_key(np.asarray(r, dtype=np.float64)) for r in X])
        return real_svm_fit(self, X, y)

    def calibrate(self, X, y):
        calls["calibrate"].append([_key(np.asarray(r, dtype=np.float64)) for r in X])
        return real_calibrate(self, X, y)

    monkeypatch.setattr(cv, "fit", fit)
    monkeypatch.setattr(cv, "predict_arrays", predict)
    monkeypatch.setattr(SpectralSVM, "fit", svm_fit)
    monkeypatch.setattr(SpectralSVM, "calibrate", calibrate)
    run = tmp_path / "run"
    extra = [f"data.selection={selection}"]
    if svm_cells:
        extra.append("arms=[{name: sd_net, model: sd_net}, {name: sdct_net, model: sdct_net}, {name: sdct_auxnet, "
                     f"source: sdct_net, aux: {{C: 10.0, gamma: scale, theta: 0.9, svm_cells: {svm_cells}}}}}]")
    config = resolve_config("sdct_auxnet", "quick", OVERRIDES + extra)
    plan = cv.run_cv(config, read_dataset(tiny_synthetic), run, folds=[0])
    images = np.load(next((run / "cache").glob("*.npy")), mmap_mode="r")
    row_of = {_key(x): i for i, x in enumerate(images)}
    return selection, plan, run, calls, row_of


def _rows(keys, row_of) -> set[int]:
    return {row_of[k] for k in keys}


@pytest.mark.parametrize("recorded", ["inner"], indirect=True)
def test_inner_selection_reads_only_training_subjects(recorded):
    """Default protocol: the best epoch (both CNNs), the SVM's training set and its Platt scaling read
    training-fold cells only; the best epoch and Platt read the inner selection subjects, the SVM and
    the networks the others; the scored fold is read by no choice at all."""
    _, plan, run, calls, row_of = recorded
    rows = cv.fold_rows(plan, 0)
    fit, select, scored = set(rows.fit.tolist()), set(rows.select.tolist()), set(rows.scored.tolist())
    subjects = plan.index["subject_id"].to_numpy()
    assert rows.inner and fit and select and scored
    assert not {subjects[i] for i in select} & {subjects[i] for i in fit | scored}
    assert len(calls["fit"]) == 2  # sd_net and sdct_net
    for train_keys, val_keys in calls["fit"]:
        assert _rows(train_keys, row_of) == fit
        assert _rows(val_keys, row_of) == select  # the best epoch is chosen on the inner subjects
    (svm_keys,), (cal_keys,) = calls["svm_fit"], calls["calibrate"]
    svm_rows = _rows([calls["features"][k] for k in svm_keys], row_of)
    cal_rows = _rows([calls["features"][k] for k in cal_keys], row_of)
    assert svm_rows and svm_rows <= fit  # eq. 3: correctly classified fit cells
    assert cal_rows == select
    info = json.loads((run / "arms/sdct_net/fold_1/fold.json").read_text())
    assert info["selection"] == "inner" and info["n_select"] == len(select) and info["n_train"] == len(fit)
    assert info["select_subjects"] == sorted({subjects[i] for i in select})

    metrics = aggregate_run(run, require_complete=False)
    preds = pd.read_csv(run / "arms/sdct_net/fold_1/predictions.csv", keep_default_na=False)
    chooser = preds[preds["set"] == "select"]
    assert set(chooser["path"]) == set(plan.index["path"].to_numpy()[sorted(select)])
    op = metrics["arms"]["sdct_net"]["operating_point"]
    expected = threshold_for_sensitivity((chooser["label"] == "all").to_numpy().astype(int), chooser["p_all"].to_numpy(float),
                                         op["target_sensitivity"])
    assert op["chosen_on"] == "select" and op["folds"]["0"]["threshold"] == pytest.approx(expected)
    assert metrics["selection"] == "inner"
    scored_preds = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    assert "select" not in set(scored_preds["set"])  # selection cells are never scored


@pytest.mark.parametrize("recorded", ["fold"], indirect=True)
def test_paper_protocol_selects_on_the_validation_fold_and_says_so(recorded):
    """``data.selection=fold``: the best epoch and the Platt scaling read the validation fold, which the
    tables then call the selection fold (optimistic)."""
    from rich.console import Console

    from blastscope.reports.tables import print_run_tables

    _, plan, run, calls, row_of = recorded
    rows = cv.fold_rows(plan, 0)
    assert not rows.inner and (rows.select == rows.scored).all()
    for train_keys, val_keys in calls["fit"]:
        assert _rows(val_keys, row_of) == set(rows.scored.tolist())
        assert _rows(train_keys, row_of) == set(rows.fit.tolist())
    (cal_keys,) = calls["calibrate"]
    assert _rows([calls["features"][k] for k in cal_keys], row_of) == set(rows.scored.tolist())
    metrics = aggregate_run(run, require_complete=False)
    assert metrics["selection"] == "fold"
    console = Console(record=True, width=200)
    print_run_tables(metrics, console)
    assert "selection fold (optimistic)" in console.export_text()


@pytest.mark.parametrize("recorded", ["inner+all_training"], indirect=True)
def test_released_svm_cells_read_the_scored_fold_and_the_tables_say_so(recorded):
    """``aux.svm_cells: all_training`` (the released code): the SVM's training cells include the scored
    fold's, fold.json records it and the tables warn that the arm's out-of-fold scores are optimistic."""
    from rich.console import Console

    from blastscope.reports.tables import print_run_tables

    _, plan, run, calls, row_of = recorded
    rows = cv.fold_rows(plan, 0)
    (svm_keys,) = calls["svm_fit"]
    svm_rows = _rows([calls["features"][k] for k in svm_keys], row_of)
    assert svm_rows & set(rows.scored.tolist()) and svm_rows & set(rows.fit.tolist())
    info = json.loads((run / "arms/sdct_auxnet/fold_1/fold.json").read_text())
    assert info["svm_cells"] == "all_training" and info["svm_saw_scored_fold"] is True
    metrics = aggregate_run(run, require_complete=False)
    console = Console(record=True, width=250)
    print_run_tables(metrics, console)
    assert "sdct_auxnet: its SVM trained on every training cell" in console.export_text()
