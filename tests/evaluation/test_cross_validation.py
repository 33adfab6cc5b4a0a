"""Cross-validation end to end on real BMP files: folds, aux SVM, theta rule, majority vote, resume."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.evaluation.aggregate import IncompleteRunError, aggregate_run
from blastscope.evaluation.cross_validation import RunFolderError, run_cv
from blastscope.evaluation.ensemble import majority_vote

# The 2-epoch CNN on these 30 tiny cells calls every training cell one class with the paper's unsigned
# DCT log (eq. 1), so every fold's SVM would fall back; the released code's signed log learns faster here.
ARMS = ("arms=[{name: sd_net, model: sd_net}, {name: sdct_net, model: sdct_net, kwargs: {dct_output: signed_log}}, "
        "{name: sdct_auxnet, source: sdct_net, aux: {C: 10.0, gamma: scale, theta: 0.9}}]")
OVERRIDES = ["train.epochs=2", "data.resize=64", "train.batch_size=8", ARMS]


@pytest.fixture(scope="module")
def quick_run(tiny_synthetic, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "sdct"
    config = resolve_config("sdct_auxnet", "quick", OVERRIDES)
    run_cv(config, read_dataset(tiny_synthetic), run)
    aggregate_run(run)
    return run


def _preds(run, arm):
    return pd.read_csv(run / "predictions.csv", keep_default_na=False).query("arm == @arm")


def test_run_folder_files(quick_run):
    for name in ("config.yaml", "run.json", "index.csv", "folds.csv", "metrics.json", "metrics_table.csv", "predictions.csv", "predictions_vote.csv"):
        assert (quick_run / name).exists(), name
    for arm in ("sd_net", "sdct_net", "sdct_auxnet"):
        for k in range(3):
            d = quick_run / "arms" / arm / f"fold_{k + 1}"
            assert (d / "fold.json").exists() and (d / "predictions.csv").exists()
    assert (quick_run / "arms/sdct_net/fold_1/best.safetensors").exists()
    assert (quick_run / "arms/sdct_net/fold_1/history.csv").read_text().startswith("epoch,lr,train_loss")


def test_no_subject_in_two_folds_and_held_out_disjoint(quick_run):
    folds = pd.read_csv(quick_run / "folds.csv", keep_default_na=False, dtype=str)
    train = folds[folds.fold != "-1"]
    assert (train.groupby("subject_id")["fold"].nunique() == 1).all()
    assert not set(train.subject_id) & set(folds[folds.fold == "-1"].subject_id)
    val = _preds(quick_run, "sdct_net").query("set == 'oof'")
    assert sorted(val.path) == sorted(train.path)  # every training cell predicted once out of fold


def test_theta_zero_is_sdct_net_and_theta_one_is_the_svm(quick_run):
    from blastscope.estimators.theta_rule import theta_combine

    cnn = _preds(quick_run, "sdct_net").sort_values(["fold", "set", "path"]).reset_index(drop=True)
    aux = _preds(quick_run, "sdct_auxnet").sort_values(["fold", "set", "path"]).reset_index(drop=True)
    proba = aux[["cnn_p_hem", "cnn_p_all"]].astype(float).to_numpy()
    np.testing.assert_allclose(proba, cnn[["p_hem", "p_all"]].to_numpy(), atol=1e-6)  # same CNN underneath
    fitted = aux["svm_pred"] != ""
    assert fitted.any()
    aux, proba, cnn = aux[fitted], proba[fitted.to_numpy()], cnn[fitted]
    svm = aux["svm_pred"].to_numpy(int)
    pred0, _ = theta_combine(proba, svm, 0.0)
    pred1, src1 = theta_combine(proba, svm, 1.0)
    assert (pred0 == cnn["pred"].to_numpy()).all()
    assert (pred1 == svm).all() and (src1 == "svm").all()
    expected, source = theta_combine(proba, svm, 0.9)
    assert (aux["pred"].to_numpy() == expected).all()
    # the arm's probability is the answering classifier's: the SVM's Platt probability where it answered
    arm_p = aux[["p_hem", "p_all"]].astype(float).to_numpy()
    svm_p = aux[["svm_p_hem", "svm_p_all"]].astype(float).to_numpy()
    by_svm = source == "svm"
    np.testing.assert_allclose(arm_p[by_svm], svm_p[by_svm])
    np.testing.assert_allclose(arm_p[~by_svm], proba[~by_svm], atol=1e-6)
    assert (arm_p.argmax(1) == aux["pred"].to_numpy()).all()  # every probability agrees with its label


def test_svm_sees_only_correctly_classified_training_cells(quick_run):
    from safetensors.numpy import load_file

    from blastscope.estimators.svm_head import SpectralSVM

    for k in range(3):
        info = json.loads((quick_run / f"arms/sdct_auxnet/fold_{k + 1}/fold.json").read_text())
        if info["aux_fallback"]:
            continue
        n_train = json.loads((quick_run / f"arms/sdct_net/fold_{k + 1}/fold.json").read_text())["n_train"]
        assert info["svm_train_cells"] == round(info["cnn_train_accuracy"] * n_train)
        svm = SpectralSVM.from_arrays(load_file(str(quick_run / f"arms/sdct_auxnet/fold_{k + 1}/svm.safetensors")))
        assert svm.arrays_["support_vectors"].shape[0] <= info["svm_train_cells"]


def test_majority_vote_is_the_mode_of_fold_models(quick_run):
    preds = _preds(quick_run, "sdct_net").query("set == 'validation'")
    wide = preds.pivot(index="path", columns="fold", values="pred").sort_index()
    vote = pd.read_csv(quick_run / "predictions_vote.csv").query("arm == 'sdct_net'").set_index("path").sort_index()
    expected, _ = majority_vote(wide.to_numpy().T)
    assert (vote["pred"].to_numpy() == expected).all()
    metrics = json.loads((quick_run / "metrics.json").read_text())
    m = metrics["arms"]["sdct_net"]["vote"]["validation"]
    assert m["n_samples"] == len(vote) and 0 <= m["weighted_f1"] <= 1
    assert metrics["image_level"] is False and metrics["grouping"] == "subject"


def test_rerun_skips_finished_folds_and_refuses_other_config(quick_run, tiny_synthetic, monkeypatch):
    import blastscope.evaluation.cross_validation as cv

    monkeypatch.setattr(cv, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained a finished fold")))
    config = resolve_config("sdct_auxnet", "quick", OVERRIDES)
    run_cv(config, read_dataset(tiny_synthetic), quick_run)
    with pytest.raises(RunFolderError, match="different configuration"):
        run_cv(resolve_config("sdct_auxnet", "quick", OVERRIDES + ["train.seed=9"]), read_dataset(tiny_synthetic), quick_run)


def test_single_folds_merge(tiny_synthetic, tmp_path):
    config = resolve_config("sd_net", "quick", ["train.epochs=1", "data.resize=64", "train.batch_size=8"])
    index = read_dataset(tiny_synthetic)
    run_cv(config, index, tmp_path, folds=[0])
    with pytest.raises(IncompleteRunError, match="not finished"):
        aggregate_run(tmp_path)
    run_cv(config, index, tmp_path, folds=[1])
    run_cv(config, index, tmp_path, folds=[2])
    metrics = aggregate_run(tmp_path)
    assert set(metrics["arms"]["sd_net"]["folds"]) == {"0", "1", "2"}


def test_image_level_needs_explicit_grouping(tmp_path, shared):
    index = read_dataset(shared("aml-cytomorphology-sample"), class_map={"MYO": "all", "LYT": "hem"})
    config = resolve_config("sd_net", "quick", ["train.epochs=1", "data.resize=64", "data.folds=2"])
    from blastscope.data.index import IndexError_

    with pytest.raises(IndexError_, match="no subject id"):
        run_cv(config, index, tmp_path / "a")
    config = resolve_config("sd_net", "quick", ["train.epochs=1", "data.resize=64", "data.folds=2", "data.grouping=image", "data.fold_mode=image"])
    run_cv(config, index, tmp_path / "b")
    metrics = aggregate_run(tmp_path / "b")
    assert metrics["image_level"] is True


def test_svm_guard_says_whether_the_svm_helped(quick_run):
    """Per fold and pooled: accuracy of the CNN on the cells it kept, of the SVM on the cells it answered and
    of the CNN on those same cells, recomputed here from predictions.csv."""
    metrics = json.loads((quick_run / "metrics.json").read_text())
    guard = metrics["arms"]["sdct_auxnet"]["svm_guard"]["validation"]
    aux = _preds(quick_run, "sdct_auxnet").query("set == 'validation'")
    for key, g in list(aux.groupby("fold")) + [("pooled", aux)]:
        entry = guard[str(key)]
        svm = g["answered_by"] == "svm"
        cnn_pred = g[["cnn_p_hem", "cnn_p_all"]].astype(float).to_numpy().argmax(1)
        assert entry["svm_answered"]["n"] == int(svm.sum())
        assert entry["svm_answered"]["k"] == int((g["pred"] == g["y"])[svm].sum())
        assert entry["cnn_kept"]["k"] == int((g["pred"] == g["y"])[~svm].sum())
        assert entry["cnn_on_svm_cells"]["k"] == int((cnn_pred == g["y"].to_numpy())[svm.to_numpy()].sum())
        gain = entry["svm_answered"]["k"] - entry["cnn_on_svm_cells"]["k"]
        assert entry["verdict"] == ("no cell answered by the SVM" if not svm.any() else
                                    "the SVM helped" if gain > 0 else "the SVM hurt" if gain < 0 else "no difference")
