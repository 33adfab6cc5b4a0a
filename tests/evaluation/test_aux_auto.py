"""``sdct_auxnet_auto``: SVM settings and theta chosen per fold on training subjects, recorded, bundled."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import blastscope.estimators.aux_search as aux_search
from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.evaluation.aggregate import aggregate_run
from blastscope.evaluation.cross_validation import fold_rows, run_cv

# signed log: the 2-epoch tiny CNN learns enough with it to leave the SVM both classes (see test_cross_validation)
ARMS = ("arms=[{name: sd_net, model: sd_net}, {name: sdct_net, model: sdct_net, kwargs: {dct_output: signed_log}}, "
        "{name: sdct_auxnet, source: sdct_net, aux: {C: auto, gamma: auto, standardize: auto, theta: auto}}]")
OVERRIDES = ["train.epochs=2", "data.resize=64", "train.batch_size=8", ARMS]


@pytest.fixture(scope="module")
def auto_run(tiny_synthetic, tmp_path_factory):
    calls = {"search": [], "theta": []}
    real_search, real_theta = aux_search.search_svm, aux_search.choose_theta
    mp = pytest.MonkeyPatch()
    mp.setattr(aux_search, "search_svm", lambda X, y, groups, **kw: calls["search"].append(np.asarray(groups)) or real_search(X, y, groups, **kw))
    mp.setattr(aux_search, "choose_theta", lambda p, s, y, t: calls["theta"].append(len(y)) or real_theta(p, s, y, t))
    run = tmp_path_factory.mktemp("auto") / "run"
    try:
        plan = run_cv(resolve_config("sdct_auxnet_auto", "quick", OVERRIDES), read_dataset(tiny_synthetic), run)
    finally:
        mp.undo()
    aggregate_run(run)
    return run, plan, calls


def test_choices_read_training_subjects_only_and_are_recorded(auto_run):
    run, plan, calls = auto_run
    subjects = plan.index["subject_id"].to_numpy()
    fitted = [k for k in range(3) if not json.loads((run / f"arms/sdct_auxnet/fold_{k + 1}/fold.json").read_text())["aux_fallback"]]
    assert fitted, "no fold fitted its SVM"
    assert len(calls["search"]) == 3
    for k, groups in enumerate(calls["search"]):
        rows = fold_rows(plan, k)
        assert set(groups) <= set(subjects[rows.fit])  # the grid search saw only the fold's fit subjects
        assert not set(groups) & set(subjects[rows.scored]) and not set(groups) & set(subjects[rows.select])
    assert sorted(calls["theta"]) == sorted(len(fold_rows(plan, k).select) for k in fitted)  # theta on selection cells
    for k in fitted:
        info = json.loads((run / f"arms/sdct_auxnet/fold_{k + 1}/fold.json").read_text())
        assert info["svm_C"] == info["svm_search"]["C"] and info["svm_gamma"] == pytest.approx(info["svm_search"]["gamma"])
        assert 0.0 <= info["theta"] <= 1.0 and info["theta_search"]["on"] == "select"
        preds = pd.read_csv(run / f"arms/sdct_auxnet/fold_{k + 1}/predictions.csv", keep_default_na=False)
        cnn_top = preds[["cnn_p_hem", "cnn_p_all"]].astype(float).max(axis=1)
        assert ((preds["answered_by"] == "cnn") == (cnn_top > info["theta"])).all()  # the chosen theta is applied


def test_bundle_carries_the_per_fold_choices_and_reproduces_the_vote(auto_run, tmp_path):
    from blastscope.data.preprocess import load_preprocessed
    from blastscope.inference.export import export_bundle
    from blastscope.inference.predictor import Predictor

    run, plan, _ = auto_run
    bundle = export_bundle(run, tmp_path / "bundle")
    meta = json.loads((bundle / "bundle.json").read_text())
    infos = [json.loads((run / f"arms/sdct_auxnet/fold_{k + 1}/fold.json").read_text()) for k in range(3)]
    assert meta["fold_thetas"] == [i["theta"] for i in infos]
    assert [f["svm_C"] for f in meta["fold_svm"]] == [i["svm_C"] for i in infos]
    predictor = Predictor(bundle)
    assert predictor.thetas == [float(i["theta"]) for i in infos]
    votes = pd.read_csv(run / "predictions_vote.csv", keep_default_na=False).query("arm == 'sdct_auxnet'")
    images = np.stack([load_preprocessed(p, predictor.preprocess) for p in votes["path"]])
    got = predictor.predict_images(images)
    assert (got.pred == votes["pred"].to_numpy()).all()
    np.testing.assert_allclose(got.proba[:, 1], votes["p_all"].to_numpy(float), atol=1e-5)
