"""The command line, driven through click's runner on real files."""
from __future__ import annotations

import json

from click.testing import CliRunner

from blastscope import __version__
from blastscope.cli import main


def _run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def test_version_and_help():
    assert _run("--version").output.strip().endswith(__version__)
    out = _run("--help").output
    for command in ("data", "cv", "models", "aggregate"):
        assert command in out


def test_data_check_real_samples(cnmc_samples):
    result = _run("data", "check", cnmc_samples, "--json")
    assert result.exit_code == 0
    report = json.loads(result.output[result.output.index("{"):])
    assert report["images"] == 10 and report["subjects"] == {"all": 4, "hem": 3}
    table = _run("data", "check", cnmc_samples).output
    assert "total" in table and "no problems found" in table


def test_data_check_exit_code_on_problems(tmp_path):
    (tmp_path / "UID_1_1_1_all.bmp").write_bytes(b"")
    result = _run("data", "check", tmp_path)
    assert result.exit_code == 1 and "empty file" in result.output


def test_data_synth_writes_official_layout(tmp_path):
    result = _run("data", "synth", tmp_path / "s", "--train-subjects", 3, "--cells", 2, 2, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "training_data" / "fold_0").is_dir()
    assert list((tmp_path / "s" / "validation_data").glob("*_labels.csv"))


def test_models_json_lists_parameter_counts():
    rows = {r["name"]: r for r in json.loads(_run("models", "--json").output)}
    assert rows["base_network"]["parameters"] == 95_362
    assert {"sd_net", "sdct_net"} <= set(rows)


def test_cv_bad_recipe_is_a_clear_error():
    result = CliRunner().invoke(main, ["cv", "no_such_recipe"])
    assert result.exit_code == 2 and "unknown recipe 'no_such_recipe'" in result.output


def test_cv_end_to_end_then_aggregate(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    result = _run("cv", "sd_net", "--profile", "quick", "--data", tiny_synthetic, "--out", out,
                  "--set", "train.epochs=1", "--set", "data.resize=64")
    assert result.exit_code == 0, result.output
    assert "Majority vote" in result.output and "Subject-level evaluation" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arms"]["sd_net"]["vote"]["validation"]["n_samples"] > 0
    again = _run("aggregate", out, "--json")
    assert json.loads(again.output)["arms"].keys() == metrics["arms"].keys()


def test_a_run_without_a_terminal_logs_every_epoch_and_every_fold(tiny_synthetic, tmp_path):
    """Under nohup/SLURM/a pipe, a run prints one line per epoch (arm, fold, epoch, loss, accuracy,
    seconds) and a summary per finished fold by default, without -v."""
    import re
    import subprocess
    import sys

    out = tmp_path / "run"
    args = [sys.executable, "-m", "blastscope", "cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic),
            "--out", str(out), "--set", "train.epochs=2", "--set", "data.resize=64", "--set", "train.max_train_batches=1",
            "--fold", "1"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    epochs = re.findall(r"sd_net fold 1 epoch (\d)/2: train loss [\d.]+ acc [\d.]+, selection loss [\d.]+ acc [\d.]+, [\d.]+ s",
                        done.stderr)
    assert epochs == ["1", "2"], done.stderr[-2000:]
    assert re.search(r"sd_net fold 1 done: best epoch \d, out-of-fold accuracy [\d.]+ on \d+ cells", done.stderr)


def test_an_unusable_out_folder_is_one_clean_message(tiny_synthetic, tmp_path):
    """``--out`` below a regular file (as a read-only or vanished folder would) gives one line naming the
    path and the problem, exit status 2, no traceback."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic),
                                       "--out", str(blocker / "run"), "--set", "train.epochs=1", "--set", "data.resize=64"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "file.txt" in result.output and "Traceback" not in result.output
    report = CliRunner().invoke(main, ["report", str(tmp_path), "--out", str(blocker / "r")])
    assert report.exit_code == 2 and "Traceback" not in report.output
