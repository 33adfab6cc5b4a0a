"""`export --int8`: PyTorch int8 parameters and int8 ONNX graphs, calibrated on each fold model's
training cells, checked on its out-of-fold cells, kept only when the checks pass; `predict` says
which precision ran."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main

pytest.importorskip("onnxruntime.quantization")


def _run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def int8_bundle(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    bundle = tmp_path_factory.mktemp("int8") / "bundle"
    result = _run("export", tiny_run, "--out", bundle, "--onnx", "--int8")
    assert result.exit_code == 0, result.output
    return bundle, result.output


@pytest.mark.parametrize("kind", ["torch", "onnx"])
def test_calibration_reads_only_the_fold_models_training_cells(tiny_run, int8_bundle, kind):
    bundle, output = int8_bundle
    meta = json.loads((bundle / "bundle.json").read_text())
    record = meta["int8"] if kind == "torch" else meta["onnx"]["int8"]
    other = meta["onnx"]["int8"] if kind == "torch" else meta["int8"]
    folds = pd.read_csv(tiny_run / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    assert [f["fold"] for f in record["folds"]] == [1, 2, 3]
    for k, (fold, twin) in enumerate(zip(record["folds"], other["folds"])):
        rows = folds.set_index("path").loc[fold["calibration_cells"]]
        assert len(rows) == min(64, int(((folds["fold"] >= 0) & (folds["fold"] != k)).sum()))
        assert (rows["fold"] >= 0).all() and (rows["fold"] != k).all()  # training subjects of fold model k only
        checked = folds.set_index("path").loc[fold["check_cells"]]
        assert (checked["fold"] == k).all() and len(checked) == fold["cells"]  # its out-of-fold cells
        assert not set(fold["calibration_cells"]) & set(fold["check_cells"])
        assert set(checked["subject_id"]).isdisjoint(rows["subject_id"])
        assert fold["calibration_cells"] == twin["calibration_cells"] and fold["check_cells"] == twin["check_cells"]
        assert 0.0 <= fold["label_agreement"] <= 1.0 and fold["fp32_img_s"] > 0 and fold["int8_img_s"] > 0
        assert fold["answer_agreement"] is not None  # the fold's answers (theta rule and SVM) are checked too
        verdict = (fold["label_agreement"] >= 0.995 and fold["answer_agreement"] >= 0.995
                   and (fold["auc_diff"] is None or fold["auc_diff"] <= 0.005))
        assert fold["accepted"] == verdict
        name = "PyTorch" if kind == "torch" else "ONNX"
        assert f"{name} int8 fold {fold['fold']}: labels agree with float32 on {fold['label_agreement']:.1%}" in output
    assert record["accepted"] == all(f["accepted"] for f in record["folds"])
    files = {f["file"] for f in record["folds"]}
    assert all((bundle / f).is_file() for f in files) if record["accepted"] else files == {None}


def test_predict_says_which_precision_ran(int8_bundle, tmp_path):
    from blastscope.inference.bundle import load_bundle

    bundle, _ = int8_bundle
    cells = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled"
    if not cells.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {cells}")
    has_int8 = load_bundle(bundle, backend="none").has_int8
    out = tmp_path / "f.csv"
    result = _run("predict", bundle, cells, "--out", out, "--backend", "onnx", "--precision", "float32")
    assert result.exit_code == 0 and "with onnx (float32)" in result.output
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["precision"] == "float32"
    auto = _run("predict", bundle, cells, "--out", tmp_path / "a.csv", "--backend", "onnx")
    assert f"with onnx ({'int8' if has_int8 else 'float32'})" in auto.output
    forced = CliRunner().invoke(main, ["predict", str(bundle), str(cells), "--out", str(tmp_path / "i.csv"),
                                       "--backend", "onnx", "--precision", "int8"])
    if has_int8:
        assert forced.exit_code == 0 and "with onnx (int8)" in forced.output
        fp = pd.read_csv(out, keep_default_na=False)
        q = pd.read_csv(tmp_path / "i.csv", keep_default_na=False)
        assert (fp["pred"] == q["pred"]).mean() >= 0.9
    else:
        assert forced.exit_code == 2 and "no int8 graphs: its int8 graphs were rejected" in forced.output
    has_torch = load_bundle(bundle, backend="none").has_torch_int8
    torch_auto = _run("predict", bundle, cells, "--out", tmp_path / "t.csv")
    assert f"with torch ({'int8' if has_torch else 'float32'})" in torch_auto.output


def test_int8_without_onnx_is_pytorch_only_and_a_plain_bundle_has_none(tiny_run, tiny_bundle, tmp_path):
    result = _run("export", tiny_run, "--out", tmp_path / "b", "--int8")
    assert result.exit_code == 0 and "PyTorch int8 fold 1" in result.output and "ONNX int8" not in result.output
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["onnx"] is None and len(meta["int8"]["folds"]) == 3
    cell = pd.read_csv(tiny_run / "folds.csv")["path"].iloc[0]
    for backend in ("onnx", "torch"):
        forced = CliRunner().invoke(main, ["predict", str(tiny_bundle), cell, "--out", str(tmp_path / "x.csv"),
                                           "--backend", backend, "--precision", "int8"])
        assert forced.exit_code == 2 and "it was exported without --int8" in forced.output


def test_int8_rejection_removes_the_graphs(tiny_run, tmp_path, monkeypatch):
    """A failing check keeps float32 only: no int8 file is left and predict cannot pick one."""
    import blastscope.inference.int8 as int8

    real = int8.int8_checks

    def failing(*args, **kwargs):
        return {**real(*args, **kwargs), "accepted": False}

    monkeypatch.setattr(int8, "int8_checks", failing)
    from blastscope.inference.bundle import load_bundle
    from blastscope.inference.export import export_bundle

    bundle = export_bundle(tiny_run, tmp_path / "b", onnx=True, int8=True)
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["onnx"]["int8"]["accepted"] is False and not list(bundle.glob("*.int8.onnx"))
    assert meta["int8"]["accepted"] is False and not list(bundle.glob("int8_fold*"))
    b = load_bundle(bundle, backend="none")
    assert not b.has_int8 and not b.has_torch_int8
    assert "rejected by their checks (bundle.json int8)" in b.int8_refusal("torch")


def test_accepted_int8_is_what_predict_runs(tiny_run, tmp_path, monkeypatch):
    """Where every fold passes, the bundle keeps both kinds, and predict's auto precision runs them: the
    PyTorch int8 network rebuilt from the bundle's safetensors gives the log-probabilities export checked."""
    import numpy as np

    import blastscope.inference.int8 as int8
    from blastscope.data.preprocess import load_preprocessed
    from blastscope.inference.bundle import load_bundle
    from blastscope.inference.export import export_bundle
    from blastscope.inference.predictor import Predictor
    from blastscope.inference.torch_int8 import TorchRunner, calibrate, quantize_model

    real, seen = int8.int8_checks, []

    def passing(fp32, q, images, *args, **kwargs):
        seen.append((q, images))
        return {**real(fp32, q, images, *args, **kwargs), "accepted": True}

    monkeypatch.setattr(int8, "int8_checks", passing)
    bundle = export_bundle(tiny_run, tmp_path / "b", onnx=True, int8=True)
    b = load_bundle(bundle)
    assert b.has_int8 and b.has_torch_int8
    assert [f.torch_int8 for f in b.folds] == [f"int8_fold{k}.safetensors" for k in (1, 2, 3)]
    torch_pred, onnx_pred = Predictor(b), Predictor(bundle, backend="onnx")
    assert torch_pred.precision == onnx_pred.precision == "int8"
    assert Predictor(b, precision="float32").precision == "float32"
    checked, images = seen[0]  # fold 1, PyTorch: what export checked is what the bundle rebuilds
    meta = json.loads((bundle / "bundle.json").read_text())
    for record in (meta["int8"], meta["onnx"]["int8"]):  # then the whole bundle: votes, sets, review flags
        vote = record["vote"]
        assert vote["ok"] and vote["cells"] == sum(min(len(f["check_cells"]), 256 // 3) for f in record["folds"])
        assert min(vote["pred_agreement"], vote["prediction_set_agreement"], vote["review_agreement"]) >= 0.995
    prep = b.preprocess
    calib = np.stack([load_preprocessed(p, prep) for p in meta["int8"]["folds"][0]["calibration_cells"]])
    model, model_input = b.torch_models()[0]
    again = TorchRunner(quantize_model(model, calibrate(model, model_input, calib)), model_input)(images)[0]
    rebuilt = TorchRunner(*b.torch_int8_models()[0])(images)[0]
    np.testing.assert_array_equal(rebuilt, checked(images)[0])
    np.testing.assert_array_equal(rebuilt, again)
    fp32 = TorchRunner(model, model_input)(images)[0]
    assert not np.array_equal(rebuilt, fp32)  # int8 really ran
    got = torch_pred.predict_images(images)
    assert got.fold_cnn_proba.shape == (3, len(images), 2)
    np.testing.assert_allclose(np.log(got.fold_cnn_proba[0]), rebuilt, atol=1e-5)


def test_int8_is_rejected_when_the_folds_answers_differ_though_the_cnn_labels_agree():
    """The SVM reads the int8 model's features: answers that change there reject int8 even when every
    CNN label is the same."""
    import numpy as np

    from blastscope.inference.int8 import int8_checks

    logp = np.log(np.array([[0.55, 0.45], [0.45, 0.55]] * 8))
    fp32 = lambda x: (logp[:len(x)], np.zeros((len(x), 3)))  # noqa: E731
    int8 = lambda x: (logp[:len(x)], np.ones((len(x), 3)))  # noqa: E731

    def answer(lp, feats):  # an "SVM" that answers from the features
        labels = (feats[:, 0] > 0.5).astype(int) ^ (np.arange(len(lp)) % 2)
        return labels, np.exp(lp)

    images = np.zeros((16, 4, 4, 3), np.uint8)
    y = np.arange(16) % 2
    checked = int8_checks(fp32, int8, images, y, 1, answer=answer)
    assert checked["label_agreement"] == 1.0 and checked["answer_agreement"] == 0.0 and not checked["accepted"]
    plain = int8_checks(fp32, int8, images, y, 1)
    assert plain["answer_agreement"] is None and plain["accepted"]



def test_int8_is_rejected_when_out_of_domain_flags_differ():
    import numpy as np

    from blastscope.inference.int8 import int8_checks

    logp = np.log(np.full((8, 2), 0.5))
    fp32 = lambda x: (logp[:len(x)], np.zeros((len(x), 2)))  # noqa: E731
    int8 = lambda x: (logp[:len(x)], np.ones((len(x), 2)))  # noqa: E731
    checked = int8_checks(fp32, int8, np.zeros((8, 4, 4, 3), np.uint8), np.arange(8) % 2, 1,
                          flag=lambda feats: feats[:, 0] > 0.5)
    assert checked["label_agreement"] == 1.0 and checked["out_of_domain_agreement"] == 0.0 and not checked["accepted"]


def test_without_the_x86_engine_pytorch_int8_is_refused_at_export_and_auto_runs_float32(tiny_run, tmp_path, monkeypatch):
    """An ARM machine (qnnpack only): export records why there is no PyTorch int8 (ONNX int8 still
    goes ahead), and a bundle whose int8 was accepted elsewhere predicts in float32 by default there."""
    import blastscope.inference.int8 as int8
    import blastscope.inference.torch_int8 as ti
    from blastscope.inference.bundle import load_bundle
    from blastscope.inference.export import export_bundle
    from blastscope.inference.predictor import Predictor

    real = int8.int8_checks
    monkeypatch.setattr(int8, "int8_checks", lambda *a, **k: {**real(*a, **k), "accepted": True})
    accepted = export_bundle(tiny_run, tmp_path / "x86", int8=True)
    assert load_bundle(accepted, backend="none").has_torch_int8
    monkeypatch.setattr(ti, "engine_available", lambda: False)
    arm = export_bundle(tiny_run, tmp_path / "arm", onnx=True, int8=True)
    meta = json.loads((arm / "bundle.json").read_text())
    assert meta["int8"]["accepted"] is False and "no x86 quantized engine" in meta["int8"]["refused"]
    assert meta["onnx"]["int8"]["accepted"] is True  # the ONNX graphs do not need it
    b = load_bundle(arm, backend="none")
    assert "export made none (this PyTorch has no x86" in b.int8_refusal("torch")
    assert Predictor(accepted).precision == "float32"


def test_an_older_bundle_with_onnx_int8_only_says_so():
    from blastscope.inference.bundle import Bundle, FoldFiles

    b = Bundle(Path("old"), {"onnx": {"int8": {"accepted": True}}}, [FoldFiles(1, "w")], [None], [{}])
    assert "older blastscope, before PyTorch int8 existed" in b.int8_refusal("torch")
    assert b.int8_refusal("onnx") is not None  # the fold names no int8 graph


def test_a_failing_vote_check_rejects_int8_that_every_fold_passed(tiny_run, tmp_path, monkeypatch):
    import blastscope.inference.export as export
    import blastscope.inference.int8 as int8
    from blastscope.inference.bundle import load_bundle

    real = int8.int8_checks
    monkeypatch.setattr(int8, "int8_checks", lambda *a, **k: {**real(*a, **k), "accepted": True})
    monkeypatch.setattr(export, "_vote_check", lambda bundle, backend, samples: {"cells": 9, "pred_agreement": 0.9,
                                                                                 "ok": False})
    bundle = export.export_bundle(tiny_run, tmp_path / "b", int8=True)
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["int8"]["accepted"] is False and meta["int8"]["vote"]["pred_agreement"] == 0.9
    assert not list(bundle.glob("int8_fold*")) and all(f["torch_int8"] is None for f in meta["folds"])
    assert not load_bundle(bundle, backend="none").has_torch_int8
