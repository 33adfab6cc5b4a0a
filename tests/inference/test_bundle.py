"""Bundles: export from a real run folder, reproduce its predictions, refuse every kind of tampering."""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blastscope.inference.bundle import load_bundle
from blastscope.inference.export import export_bundle
from blastscope.inference.manifest import BundleError, write_manifest


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


def test_layout_metadata_and_hashes(tiny_run, tiny_bundle):
    meta = json.loads((tiny_bundle / "bundle.json").read_text())
    run = json.loads((tiny_run / "run.json").read_text())
    assert meta["arm"] == "sdct_auxnet" and meta["model"]["id"] == "sdct_net" and meta["model"]["arm"] == "sdct_net"
    assert meta["class_names"] == run["class_names"] and meta["positive"] == "all" and meta["theta"] == 0.9
    assert meta["preprocess"] == {"canvas": 350, "resize": 64, "threshold": 0}
    names = {p.name for p in tiny_bundle.iterdir()}
    for k in (1, 2, 3):
        assert {f"model_fold{k}.safetensors", f"model_fold{k}.onnx"} <= names
        source = tiny_run / "arms" / "sdct_net" / f"fold_{k}" / "best.safetensors"
        assert (tiny_bundle / f"model_fold{k}.safetensors").read_bytes() == source.read_bytes()
        has_svm = (tiny_run / "arms" / "sdct_auxnet" / f"fold_{k}" / "svm.safetensors").exists()
        assert (f"svm_fold{k}.safetensors" in names) == has_svm
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())["files"]
    assert set(manifest) == names - {"manifest.json"}
    for name, digest in manifest.items():
        assert hashlib.sha256((tiny_bundle / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("arm", ["sdct_auxnet", "sd_net"])
def test_predict_reproduces_the_runs_votes(tiny_run, tiny_bundle, tmp_path, arm):
    """A bundle predicting the held-out files gives the run's own voted predictions (eq. 11)."""
    from blastscope.inference.predictor import Predictor

    bundle = tiny_bundle if arm == "sdct_auxnet" else export_bundle(tiny_run, tmp_path / "b", arm=arm)
    votes = pd.read_csv(tiny_run / "predictions_vote.csv", keep_default_na=False)
    votes = votes[(votes["arm"] == arm) & (votes["set"] == "validation")].set_index("path")
    result = Predictor(bundle, batch_size=5).predict_files(list(votes.index))
    cells = result.cells.set_index("file").loc[votes.index]
    classes = ["hem", "all"]
    assert (cells["status"] == "ok").all() and not result.bad
    assert cells["pred"].tolist() == [classes[i] for i in votes["pred"]]
    for c in classes:  # p_ is the calibrated probability (the run's cal_p_), raw_p_ the raw one (the run's p_)
        np.testing.assert_allclose(cells[f"p_{c}"].to_numpy(), votes[f"cal_p_{c}"].to_numpy(), atol=1e-5)
        np.testing.assert_allclose(cells[f"raw_p_{c}"].to_numpy(), votes[f"p_{c}"].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(cells["agreement"].to_numpy(), votes["agreement"].to_numpy())
    for k in range(3):  # every fold model's label, after the theta rule, equals the run's
        fold = pd.read_csv(tiny_run / "arms" / arm / f"fold_{k + 1}" / "predictions.csv", keep_default_na=False)
        fold = fold[fold["set"] == "validation"].set_index("path").loc[votes.index]
        assert [p.split("|")[k] for p in cells["fold_preds"]] == [classes[i] for i in fold["pred"]]


def test_changed_byte_is_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    data = bytearray((b / "model_fold2.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (b / "model_fold2.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model_fold2\.safetensors: SHA-256 mismatch"):
        load_bundle(b)


def test_swapped_fold_weights_are_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    one, two = b / "model_fold1.safetensors", b / "model_fold2.safetensors"
    a, c = one.read_bytes(), two.read_bytes()
    assert a != c
    one.write_bytes(c)
    two.write_bytes(a)
    with pytest.raises(BundleError, match=r"model_fold1\.safetensors: SHA-256 mismatch.*swapped"):
        load_bundle(b)


class _Payload:
    """Unpickling this writes a marker file (what a malicious pickle would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("target,backend", [("model_fold1.safetensors", "torch"), ("model_fold1.onnx", "onnx"),
                                            ("bundle.json", "torch")])
def test_pickle_payload_is_never_executed(tiny_bundle, tmp_path, target, backend):
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists(), "the payload must be live for this test to mean anything"
    marker = tmp_path / "marker"
    b = _copy(tiny_bundle, tmp_path)
    (b / target).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(BundleError, match=rf"{target.replace('.', '[.]')}: SHA-256 mismatch"):
        load_bundle(b, backend=backend)
    write_manifest(b)  # an attacker who also rewrites the manifest meets the format checks
    with pytest.raises(BundleError, match=rf"{target.replace('.', '[.]')}"):
        load_bundle(b, backend=backend)
    assert not marker.exists()


def test_unknown_schema_and_toolkit_major_version(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    meta = json.loads((b / "bundle.json").read_text())
    for key, value, message in [("schema_version", 99, "unknown bundle schema version 99"),
                                ("toolkit_version", "7.0.0", "written by blastscope 7.0.0")]:
        (b / "bundle.json").write_text(json.dumps({**meta, key: value}))
        write_manifest(b)
        with pytest.raises(BundleError, match=message):
            load_bundle(b)


def test_files_named_outside_the_manifest_are_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    outside = tmp_path / "outside.safetensors"
    shutil.copy(b / "model_fold1.safetensors", outside)
    meta = json.loads((b / "bundle.json").read_text())
    meta["folds"][0]["weights"] = "../outside.safetensors"
    (b / "bundle.json").write_text(json.dumps(meta))
    write_manifest(b)
    with pytest.raises(BundleError, match="names '../outside.safetensors', which is not a verified file"):
        load_bundle(b)


def test_tensor_shape_mismatch_names_file_and_tensor(tiny_bundle, tmp_path):
    from safetensors.numpy import load_file, save_file

    b = _copy(tiny_bundle, tmp_path)
    tensors = load_file(str(b / "model_fold3.safetensors"))
    key = next(k for k, v in tensors.items() if k.endswith("fc.weight"))
    tensors[key] = np.zeros((3, tensors[key].shape[1]), tensors[key].dtype)
    save_file(tensors, str(b / "model_fold3.safetensors"))
    write_manifest(b)
    with pytest.raises(BundleError, match=rf"model_fold3\.safetensors: tensor '{key}' has shape \(3, "):
        load_bundle(b)


def test_extra_file_is_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle, tmp_path)
    (b / "model_fold4.safetensors").write_bytes((b / "model_fold1.safetensors").read_bytes())
    with pytest.raises(BundleError, match=r"model_fold4\.safetensors: not listed"):
        load_bundle(b)


def test_export_refusals(tiny_run, tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="already exists"):
        export_bundle(tiny_run, tiny_bundle)
    with pytest.raises(BundleError, match="no arm 'nope'; arms: sd_net, sdct_net, sdct_auxnet"):
        export_bundle(tiny_run, tmp_path / "x", arm="nope")
    (tmp_path / "not_a_bundle").mkdir()
    (tmp_path / "not_a_bundle" / "thesis.tex").write_text("keep me")
    with pytest.raises(BundleError, match="not a bundle; refusing"):
        export_bundle(tiny_run, tmp_path / "not_a_bundle", overwrite=True)
    partial = Path(shutil.copytree(tiny_run, tmp_path / "partial", ignore=shutil.ignore_patterns("cache")))
    (partial / "arms" / "sdct_auxnet" / "fold_2" / "fold.json").unlink()
    with pytest.raises(BundleError, match="fold 2 of arm 'sdct_auxnet' is not finished"):
        export_bundle(partial, tmp_path / "y")
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y.tmp-*"))


@pytest.mark.parametrize("change,message", [
    ({"preprocess": {"canvas": 60000, "resize": 64, "threshold": 0}}, r"preprocess.canvas must be null or an integer in \[16, 2048\], got 60000"),
    ({"preprocess": {"canvas": 350, "resize": 10**6, "threshold": 0}}, r"preprocess.resize .* got 1000000"),
    ({"preprocess": {"canvas": 350, "resize": 64, "threshold": 0, "extra": 1}}, r"unknown key\(s\) \['extra'\]"),
    ({"theta": "abc"}, r"theta must be a number in \[0, 1\], got 'abc'"),
    ({"fold_thetas": [0.9, 7, 0.9]}, r"fold_thetas must be numbers in \[0, 1\]"),
    ({"class_names": ["hem"] * 100}, r"class_names must be 2 to 64 distinct names"),
    ({"class_names": ["all", "all"]}, r"class_names must be 2 to 64 distinct names"),
    ({"preprocess": {"canvas": 350, "resize": 64, "threshold": "abc"}}, r"preprocess.threshold must be an integer in \[0, 255\], got 'abc'"),
    ({"model": {"id": "sdct_net", "kwargs": {"bogus": 1}}}, r"model 'sdct_net' cannot be built from its kwargs \{'bogus': 1\} \(.*unexpected keyword"),
    ({"model": {"id": "sdct_net", "kwargs": [1]}}, r"model must be a mapping with the string 'id' and the mapping 'kwargs'"),
    ({"model": "sdct_net"}, r"model must be a mapping"),
    ({"input": {"name": "rgb", "kwargs": {"bogus": 1}}}, r"model input 'rgb' cannot be built from its kwargs"),
    ({"input": "rgb"}, r"input must be a mapping"),
])
def test_settings_out_of_bounds_are_refused_before_allocating(tiny_bundle, tmp_path, change, message):
    """A bundle whose manifest was recomputed after editing its settings still meets bounds checks with a
    clear error naming bundle.json (``canvas: 60000`` would otherwise ask for ~11 GB)."""
    from blastscope.inference.predictor import Predictor

    b = _copy(tiny_bundle, tmp_path)
    meta = json.loads((b / "bundle.json").read_text())
    (b / "bundle.json").write_text(json.dumps({**meta, **change}))
    write_manifest(b)
    with pytest.raises(BundleError, match=message):
        Predictor(b)


@pytest.mark.parametrize("change,message", [
    ({"preprocess": {"canvas": 350, "resize": 64, "threshold": 0, "extra": 1}}, "preprocess has unknown key(s) ['extra']"),
    ({"model": {"id": "sdct_net", "kwargs": {"bogus": 1}}}, "model 'sdct_net' cannot be built from its kwargs"),
    ({"theta": "abc"}, "theta must be a number in [0, 1], got 'abc'"),
])
def test_predict_names_the_bundle_and_the_problem_in_one_line(tiny_bundle, tiny_synthetic, tmp_path, change, message):
    """``blastscope predict`` with an edited (manifest recomputed) bundle.json: one line naming the
    bundle's file and the problem, exit status 2; bad model kwargs were a TypeError traceback, exit 1."""
    from click.testing import CliRunner

    from blastscope.cli import main

    b = _copy(tiny_bundle, tmp_path)
    meta = json.loads((b / "bundle.json").read_text())
    (b / "bundle.json").write_text(json.dumps({**meta, **change}))
    write_manifest(b)
    image = next(tiny_synthetic.rglob("*.bmp"))
    result = CliRunner().invoke(main, ["predict", str(b), str(image), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 2, result.output
    assert f"error: {b / 'bundle.json'}: {message}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
