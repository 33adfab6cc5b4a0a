"""`blastscope report` and `blastscope compare` through click's runner on a real run folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from blastscope.cli import main


def _run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def test_report_aggregates_computes_artefacts_and_renders(tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("cache", "artefacts")))
    (run / "metrics.json").unlink()
    result = _run("report", run, "--out", tmp_path / "html")
    assert result.exit_code == 0, result.output
    assert "aggregating" in result.output and "report: " in result.output
    assert (run / "metrics.json").exists() and (run / "artefacts" / "dct_cells.npz").exists()
    text = (tmp_path / "html" / "report.html").read_text()
    assert "Majority vote" in text and text.count("data:image/png;base64,") >= 12


def test_report_without_artefacts_and_on_a_non_run(tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("cache", "artefacts")))
    assert _run("report", run, "--no-artefacts").exit_code == 0
    assert "Model activations are not available" in (run / "report" / "report.html").read_text()
    not_run = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert not_run.exit_code == 2 and "not a run folder" in not_run.output


def test_compare_marks_other_folds(tiny_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("run.json", "metrics.json", "folds.csv"):
        shutil.copy(tiny_run / name, other / name)
    f = pd.read_csv(other / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    f.loc[f.index[f["fold"] == 2][0], "fold"] = 0
    f.to_csv(other / "folds.csv", index=False)
    result = _run("compare", tiny_run, other, "--set", "validation", "--csv", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    assert "folds differ from run" in result.output and "folds B: other" in result.output
    table = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    assert set(table["set"]) == {"validation"} and len(table) == 6  # 3 arms x 2 runs
