"""The Predictor: theta rule with the bundle's SVM arrays, vote, review flags, bad files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from blastscope.inference.predictor import Predictor

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled"


def _samples() -> list[Path]:
    if not SAMPLES.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {SAMPLES}")
    return sorted(SAMPLES.glob("*.bmp"))


@pytest.fixture(scope="module")
def svm_bundle(tiny_run, tmp_path_factory):
    """The tiny run with an RBF SVM (scikit-learn, true labels) written for every fold, exported with ONNX.

    Returns (bundle path, [(fold CNN, fitted sklearn SVC), ...]) so tests can recompute predictions
    independently of the bundle code.
    """
    from safetensors.numpy import save_file

    from blastscope.config import read_config
    from blastscope.data.preprocess import Preprocess, load_preprocessed
    from blastscope.engine.arm_models import load_fold_model
    from blastscope.engine.inference import predict_arrays
    from blastscope.estimators.svm_head import SpectralSVM
    from blastscope.inference.export import export_bundle

    root = tmp_path_factory.mktemp("svm_run")
    run = Path(shutil.copytree(tiny_run, root / "run", ignore=shutil.ignore_patterns("cache", "artefacts", "report")))
    config = read_config(run / "config.yaml")
    folds = pd.read_csv(run / "folds.csv", keep_default_na=False)
    prep = Preprocess(canvas=config.data.canvas, resize=config.data.resize)
    references = []
    for k in range(3):
        train = folds[(folds["fold"] >= 0) & (folds["fold"] != k)]
        images = np.stack([load_preprocessed(p, prep) for p in train["path"]])
        model, model_input = load_fold_model(run, config, "sdct_net", k)
        _, feats = predict_arrays(model, images, spectral=True, input_fn=model_input)
        y = (train["label"] == "all").to_numpy().astype(np.int64)
        svm = SpectralSVM(C=10.0, gamma=1.0).fit(feats, y).calibrate(feats, y)
        save_file({n: np.ascontiguousarray(v) for n, v in svm.to_arrays().items()},
                  str(run / "arms" / "sdct_auxnet" / f"fold_{k + 1}" / "svm.safetensors"))
        references.append((model, svm.svc_, svm.platt_a_))
    return export_bundle(run, root / "bundle", onnx=True), references


def _expected(references, images: np.ndarray, theta: float):
    """Straightforward per-fold theta rule (eqs. 4-5) and mode of the fold labels (eq. 11)."""
    preds, sources, probas = [], [], []
    for model, svc, slope in references:
        with torch.inference_mode():
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
            maps = model.forward_features(x)
            proba = torch.softmax(model.forward_head(maps), dim=1).numpy()
            feats = maps.mean(dim=1).flatten(1).numpy()
        svm_pred = svc.predict(feats.astype(np.float64))
        p_all = 1.0 / (1.0 + np.exp(-slope * svc.decision_function(feats.astype(np.float64))))  # Platt, slope only
        use_cnn = proba.max(axis=1) > theta
        preds.append(np.where(use_cnn, proba.argmax(axis=1), svm_pred))
        sources.append(np.where(use_cnn, "cnn", "svm"))
        probas.append(np.where(use_cnn[:, None], proba, np.stack([1 - p_all, p_all], axis=1)))
    preds = np.stack(preds)
    vote = (preds.sum(axis=0) * 2 > len(references)).astype(int)  # two classes, three models: no ties
    return preds, np.stack(sources), vote, (preds == vote).mean(axis=0), np.stack(probas)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("theta", [0.0, 0.55, 1.0])
def test_theta_rule_with_svm_arrays_matches_reference(svm_bundle, backend, theta):
    from blastscope.data.preprocess import load_preprocessed

    bundle, references = svm_bundle
    predictor = Predictor(bundle, backend=backend, theta=theta)
    images = np.stack([load_preprocessed(p, predictor.preprocess) for p in _samples()])
    got = predictor.predict_images(images)
    preds, sources, vote, agreement, probas = _expected(references, images, theta)
    np.testing.assert_array_equal(got.fold_pred, preds)
    np.testing.assert_allclose(got.fold_proba, probas, atol=1e-4)  # the answering classifier's probability
    assert (got.fold_proba.argmax(axis=2) == got.fold_pred).all()
    np.testing.assert_array_equal(got.fold_source, sources)
    np.testing.assert_array_equal(got.pred, vote)
    np.testing.assert_allclose(got.agreement, agreement)
    if theta == 1.0:
        assert (got.fold_source == "svm").all()
    if theta == 0.0:
        assert (got.fold_source == "cnn").all()


def test_folder_with_a_bad_file(tiny_bundle, tmp_path):
    samples = _samples()
    folder = tmp_path / "cells"
    folder.mkdir()
    for p in samples[:4]:
        shutil.copy(p, folder / p.name)
    (folder / "UID_7_1_1_all.bmp").write_bytes(b"")
    (folder / "UID_7_1_2_all.bmp").write_bytes(b"BM" + b"\0" * 40)
    files = sorted(folder.iterdir())
    result = Predictor(tiny_bundle).predict_files(files, review_below=0.99)
    bad = {Path(b.file).name: b.reason for b in result.bad}
    assert bad["UID_7_1_1_all.bmp"] == "empty file (0 bytes)" and "UID_7_1_2_all.bmp" in bad
    cells = result.cells.set_index("file")
    assert len(cells) == 6 and (cells["status"] == "ok").sum() == 4
    assert cells.loc[str(folder / "UID_7_1_1_all.bmp"), "error"] == "empty file (0 bytes)"
    ok = cells[cells["status"] == "ok"]
    assert set(ok["pred"]) <= {"hem", "all"}
    np.testing.assert_allclose(ok["p_hem"] + ok["p_all"], 1.0, atol=1e-9)
    np.testing.assert_allclose(ok["confidence"], np.where(ok["pred"] == "all", ok["p_all"], ok["p_hem"]))
    assert (ok["review"] == (ok["confidence"] < 0.99)).all()
    assert (ok["answered_by"] == np.where(ok["svm_share"] == 0, "cnn", np.where(ok["svm_share"] == 1, "svm", "mixed"))).all()


def test_constructor_checks(tiny_bundle):
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor(tiny_bundle, backend="tensorflow")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Predictor(tiny_bundle, batch_size=0)
    with pytest.raises(ValueError, match="theta must be in"):
        Predictor(tiny_bundle, theta=1.5)
