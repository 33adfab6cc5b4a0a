"""Data-parallel cross-validation: two real gloo processes train together, rank 0 alone evaluates and writes.

The ranks are started like torchrun starts them (``RANK``/``WORLD_SIZE``/``MASTER_*`` in the
environment, each process running ``blastscope cv``), in separate Python processes that record every
file they commit (``os.replace``, which every atomic write of blastscope ends with) and every
evaluation batch run of cross-validation (``cross_validation.predict_arrays``).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main
from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.evaluation.cross_validation import run_cv

ARMS = "arms=[{name: cnn, model: sd_net}, {name: aux, source: cnn, aux: {theta: 0.9, gamma: scale}}]"
OVERRIDES = ["train.epochs=1", "data.resize=64", "data.folds=2", "train.batch_size=8", ARMS, "data.selection=fold"]  # every training cell trains: the tiny folds are small

RANK_MAIN = r"""
import json, os, sys
import torch
torch.set_num_threads(1)
from click.testing import CliRunner
import blastscope.evaluation.cross_validation as cv
from blastscope.cli import main

log_path, args = sys.argv[1], sys.argv[2:]
committed, evaluated = [], []
real_replace, real_predict = os.replace, cv.predict_arrays

def replace(src, dst, *a, **k):
    committed.append(os.path.realpath(dst))
    return real_replace(src, dst, *a, **k)

def predict(model, images, *a, **k):
    evaluated.append(len(images))
    return real_predict(model, images, *a, **k)

os.replace, cv.predict_arrays = replace, predict
result = CliRunner().invoke(main, args)
with open(log_path, "w") as fh:  # a plain write: not recorded
    json.dump({"exit_code": result.exit_code, "output": result.output + repr(result.exception),
               "committed": committed, "evaluated": evaluated}, fh)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_like(args: list[str], logs, world: int = 2) -> list[dict]:
    """Run ``blastscope <args>`` in ``world`` processes joined as torchrun would join them."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_MAIN, str(logs / f"rank{rank}.json"), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        outputs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            p.kill()
    records = []
    for rank, out in enumerate(outputs):
        path = logs / f"rank{rank}.json"
        assert path.exists(), f"rank {rank} left no record:\n{out[-3000:]}"
        records.append(json.loads(path.read_text()))
    return records


@pytest.fixture(scope="module")
def ddp_run(tiny_synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    run = root / "run"
    args = ["cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic), "--out", str(run), "--json"]
    for item in OVERRIDES:
        args += ["--set", item]
    return run, _torchrun_like(args, root)


def test_only_rank_zero_evaluates_and_writes(ddp_run):
    """Invariant: after data-parallel training, rank 1 commits no file and runs no evaluation; rank 0
    commits every fold's predictions.csv, fold.json and svm.safetensors, the run files and the
    aggregation exactly once."""
    run, (zero, one) = ddp_run
    assert zero["exit_code"] == 0 and one["exit_code"] == 0, zero["output"] + one["output"]
    assert one["committed"] == [] and one["evaluated"] == []
    committed = pd.Series(zero["committed"]).value_counts()
    assert committed.get(os.path.realpath(run / "run.json")) == 2  # created, then its provenance gets the end time
    once = [run / name for name in ("config.yaml", "folds.csv", "index.csv", "skipped.csv", "metrics.json")]
    svms = [run / "arms" / "aux" / f"fold_{k + 1}" / "svm.safetensors" for k in range(2)
            if not json.loads((run / "arms" / "aux" / f"fold_{k + 1}" / "fold.json").read_text())["aux_fallback"]]
    assert svms, "no fold fitted its SVM: the test would not see svm.safetensors written"
    for k in range(2):
        once += [run / "arms" / arm / f"fold_{k + 1}" / name for arm in ("cnn", "aux") for name in ("predictions.csv", "fold.json")]
        once += [run / "arms" / "cnn" / f"fold_{k + 1}" / name for name in ("best.safetensors", "history.csv", "fit.json")]
    for path in once + svms:
        assert committed.get(os.path.realpath(path)) == 1 or path.name in ("best.safetensors", "history.csv") \
            and committed.get(os.path.realpath(path), 0) >= 1, path
    assert zero["evaluated"], "rank 0 evaluated nothing"
    printed = zero["output"]
    metrics = json.loads(printed[printed.index("\n{\n") + 1:printed.rindex("}") + 1])
    assert set(metrics["arms"]) == {"cnn", "aux"} and metrics == json.loads((run / "metrics.json").read_text())
    assert '"recipe"' not in one["output"]  # rank 1 neither aggregates nor prints metrics


def test_predictions_match_one_process(ddp_run, tiny_synthetic, tmp_path):
    """Invariant: the data-parallel run (global batch 8 = 2 x 4) predicts what one process with batch 8
    predicts, up to float rounding, for the CNN arm and the auxiliary SVM arm on its features."""
    run, _ = ddp_run
    single = tmp_path / "single"
    run_cv(resolve_config("sd_net", "quick", OVERRIDES), read_dataset(tiny_synthetic), single)
    for arm in ("cnn", "aux"):
        for k in range(2):
            a = pd.read_csv(single / "arms" / arm / f"fold_{k + 1}" / "predictions.csv", keep_default_na=False)
            b = pd.read_csv(run / "arms" / arm / f"fold_{k + 1}" / "predictions.csv", keep_default_na=False)
            assert a[["set", "path", "y"]].equals(b[["set", "path", "y"]])
            np.testing.assert_allclose(b[["p_hem", "p_all"]].to_numpy(), a[["p_hem", "p_all"]].to_numpy(), atol=1e-4)
            if arm == "aux":
                assert (a["svm_pred"] == b["svm_pred"]).mean() >= 0.95


@pytest.mark.timeout(180)
def test_devices_two_reports_rank_zero_errors_as_cli_errors(tiny_synthetic, tmp_path):
    """An unreadable image under ``--devices 2``: rank 0 fails while decoding, rank 1 stops too (it
    does not wait forever), and the CLI prints the one error listing the file, exit code 2."""
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    empty = sorted((root / "training_data" / "fold_0" / "all").glob("*.bmp"))[0]
    empty.write_bytes(b"")
    args = ["cv", "sd_net", "--profile", "quick", "--data", str(root), "--out", str(tmp_path / "run"), "--devices", "2"]
    for item in OVERRIDES:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "cannot be read" in result.output
    assert str(empty.resolve()) in result.output and "empty file" in result.output
    assert not (tmp_path / "run" / "arms").exists()
