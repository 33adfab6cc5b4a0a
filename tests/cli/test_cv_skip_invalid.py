"""``blastscope cv`` on data with unreadable images: refused with every file listed, or ``--skip-invalid``."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main

ARGS = ["cv", "sd_net", "--profile", "quick", "--set", "train.epochs=1", "--set", "data.resize=64", "--json"]


@pytest.fixture(scope="module")
def damaged(tiny_synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged") / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    empty = sorted((root / "training_data" / "fold_0" / "all").glob("*.bmp"))[0]
    empty.write_bytes(b"")
    cut = sorted((root / "training_data" / "fold_1" / "hem").glob("*.bmp"))[-1]
    cut.write_bytes(cut.read_bytes()[:3000])
    return root, {str(empty.resolve()): "empty file", str(cut.resolve()): "truncated"}


def test_training_refuses_and_lists_every_bad_file(damaged, tmp_path):
    root, bad = damaged
    result = CliRunner().invoke(main, ARGS + ["--data", str(root), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "2 image file(s) cannot be read" in result.output and "--skip-invalid" in result.output
    for path, reason in bad.items():
        line = next(x for x in result.output.splitlines() if path in x)
        assert reason in line
    assert not (tmp_path / "run" / "arms").exists()  # nothing was trained


def test_skip_invalid_trains_on_the_rest_and_records_the_skipped_files(damaged, tmp_path):
    root, bad = damaged
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ARGS + ["--data", str(root), "--out", str(run), "--skip-invalid", "--fold", "1"])
    assert result.exit_code == 0, result.output
    skipped = pd.read_csv(run / "skipped.csv")
    assert list(skipped.columns) == ["file", "reason"]
    assert dict(zip(skipped["file"], skipped["reason"].str.split(" ").str[0])) == {p: r.split(" ")[0] for p, r in bad.items()}
    assert json.loads((run / "run.json").read_text())["skipped"] == 2
    folds = pd.read_csv(run / "folds.csv")
    assert not set(folds["path"]) & set(bad)
    preds = pd.read_csv(run / "arms" / "sd_net" / "fold_1" / "predictions.csv")
    assert not set(preds["path"]) & set(bad) and len(preds) > 0


def test_report_and_metrics_show_the_skipped_files(damaged, tmp_path):
    from blastscope.reports.html import build_report

    root, bad = damaged
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ARGS + ["--data", str(root), "--out", str(run), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["skipped"] == 2
    html = build_report(run).read_text()
    assert "2 file(s) were skipped as unreadable or badly named" in html
    for path in bad:
        assert path in html
