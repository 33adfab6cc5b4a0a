"""`export --int8`: calibrated on each fold model's training cells, checked on its out-of-fold cells,
kept only when the checks pass; `predict` says which precision ran."""
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


def test_calibration_reads_only_the_fold_models_training_cells(tiny_run, int8_bundle):
    bundle, output = int8_bundle
    record = json.loads((bundle / "bundle.json").read_text())["onnx"]["int8"]
    folds = pd.read_csv(tiny_run / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    assert [f["fold"] for f in record["folds"]] == [1, 2, 3]
    for k, fold in enumerate(record["folds"]):
        rows = folds.set_index("path").loc[fold["calibration_cells"]]
        assert len(rows) == min(64, int(((folds["fold"] >= 0) & (folds["fold"] != k)).sum()))
        assert (rows["fold"] >= 0).all() and (rows["fold"] != k).all()  # training subjects of fold model k only
        checked = folds.set_index("path").loc[fold["check_cells"]]
        assert (checked["fold"] == k).all() and len(checked) == fold["cells"]  # its out-of-fold cells
        assert not set(fold["calibration_cells"]) & set(fold["check_cells"])
        assert set(checked["subject_id"]).isdisjoint(rows["subject_id"])
        assert 0.0 <= fold["label_agreement"] <= 1.0 and fold["fp32_img_s"] > 0 and fold["int8_img_s"] > 0
        verdict = fold["label_agreement"] >= 0.995 and (fold["auc_diff"] is None or fold["auc_diff"] <= 0.005)
        assert fold["accepted"] == verdict
        assert f"int8 fold {fold['fold']}: labels agree with float32 on {fold['label_agreement']:.1%}" in output
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
    torch_int8 = CliRunner().invoke(main, ["predict", str(bundle), str(cells), "--out", str(tmp_path / "t.csv"),
                                           "--precision", "int8"])
    assert torch_int8.exit_code == 2 and "int8 runs on the onnx backend only" in torch_int8.output


def test_int8_needs_onnx_and_a_plain_bundle_has_none(tiny_run, tiny_bundle, tmp_path):
    result = CliRunner().invoke(main, ["export", str(tiny_run), "--out", str(tmp_path / "b"), "--int8"])
    assert result.exit_code == 2 and "pass --onnx with --int8" in result.output
    forced = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(tmp_path), "--out", str(tmp_path / "x.csv"),
                                       "--backend", "onnx", "--precision", "int8"])
    assert forced.exit_code == 2


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
    record = json.loads((bundle / "bundle.json").read_text())["onnx"]["int8"]
    assert record["accepted"] is False and not list(bundle.glob("*.int8.onnx"))
    assert not load_bundle(bundle, backend="none").has_int8
