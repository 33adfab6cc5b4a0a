"""`blastscope export` and `blastscope predict` through click's runner on real files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples"


def _run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


@pytest.fixture
def cells(tmp_path) -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {SAMPLES}")
    folder = Path(shutil.copytree(SAMPLES / "labeled", tmp_path / "cells"))
    (folder / "UID_8_1_1_all.bmp").write_bytes(b"")
    return folder


def test_export_then_predict_both_backends(tiny_run, cells, tmp_path):
    bundle = tmp_path / "bundle"
    result = _run("export", tiny_run, "--out", bundle, "--onnx")
    assert result.exit_code == 0, result.output
    assert "3 fold models, ONNX" in result.output and (bundle / "model_fold3.onnx").exists()
    outputs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend / "preds.csv"
        result = _run("predict", bundle, cells, str(SAMPLES / "unlabeled" / "*.bmp"), "--out", out,
                      "--backend", backend, "--review-below", "0.95", "--batch-size", "4")
        assert result.exit_code == 0, result.output
        assert f"skipped {cells / 'UID_8_1_1_all.bmp'}: empty file (0 bytes)" in result.output
        assert "13 cells predicted" in result.output and "1 failed" in result.output
        table = pd.read_csv(out, keep_default_na=False)
        assert len(table) == 14 and (table["status"] == "error").sum() == 1
        assert {"pred", "p_hem", "p_all", "answered_by", "agreement", "review"} <= set(table.columns)
        everything = json.loads(out.with_suffix(".json").read_text(), parse_constant=pytest.fail)  # no NaN tokens
        assert everything["bad_files"] == [{"file": str(cells / "UID_8_1_1_all.bmp"), "reason": "empty file (0 bytes)"}]
        subjects = pd.read_csv(out.with_name("preds_subjects.csv"), keep_default_na=False, dtype={"subject_id": str})
        assert set(subjects["subject_id"]) == {"1", "2", "3", "53", "H2", "H3", "H10"}  # from C-NMC names
        assert subjects["cells"].sum() == 10 and set(subjects["call"]) <= {"leukemic", "normal", "refer"}
        outputs[backend] = table
    assert outputs["torch"]["pred"].tolist() == outputs["onnx"]["pred"].tolist()
    assert (outputs["torch"]["p_all"].replace("", 0).astype(float)
            - outputs["onnx"]["p_all"].replace("", 0).astype(float)).abs().max() < 1e-4


def test_predict_one_subject_and_clear_errors(tiny_bundle, cells, tmp_path):
    out = tmp_path / "p.csv"
    result = _run("predict", tiny_bundle, cells, "--out", out, "--subject", "patient-1")
    assert result.exit_code == 0, result.output
    subjects = pd.read_csv(tmp_path / "p_subjects.csv")
    assert subjects["subject_id"].tolist() == ["patient-1"] and subjects["cells"].tolist() == [10]
    missing = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(tmp_path / "none.bmp"), "--out", str(out)])
    assert missing.exit_code == 2 and "no image files to predict" in missing.output
    empty = tmp_path / "empty_bundle"
    empty.mkdir()
    bad = CliRunner().invoke(main, ["predict", str(empty), str(cells), "--out", str(out)])
    assert bad.exit_code == 2 and "manifest missing" in bad.output


def test_predict_never_overwrites_inputs_or_its_own_outputs(tiny_bundle, cells, tmp_path):
    """``--out x.json`` would write the CSV and the JSON to one file; ``--out <an input image>`` would replace
    the image with CSV text; an existing output is kept unless --overwrite is given."""
    victim = sorted(cells.glob("*.bmp"))[1]
    before = victim.read_bytes()
    clash = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(cells), "--out", str(victim)])
    assert clash.exit_code == 2 and "is an input" in clash.output and victim.read_bytes() == before
    same = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(cells), "--out", str(tmp_path / "x.json")])
    assert same.exit_code == 2 and "would overwrite each other" in same.output and not (tmp_path / "x.json").exists()
    out = tmp_path / "p.csv"
    assert _run("predict", tiny_bundle, cells, "--out", out).exit_code == 0
    out.write_text("keep me")
    again = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(cells), "--out", str(out)])
    assert again.exit_code == 2 and "already exist" in again.output and out.read_text() == "keep me"
    assert _run("predict", tiny_bundle, cells, "--out", out, "--overwrite").exit_code == 0
    assert out.read_text().startswith("file,")


def test_formula_text_from_names_is_neutralised_in_the_csvs(tiny_bundle, cells, tmp_path):
    """A subject id like ``=cmd|' /C calc'!A0`` reaches the per-cell and per-subject CSVs as text that a
    spreadsheet does not run (a leading '), while the JSON keeps it raw and numbers stay numbers."""
    evil = "=cmd|' /C calc'!A0"
    out = tmp_path / "p.csv"
    result = _run("predict", tiny_bundle, cells, "--out", out, "--subject", evil)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out, keep_default_na=False)
    assert set(rows["subject_id"]) == {"'" + evil}
    assert pd.read_csv(tmp_path / "p_subjects.csv", keep_default_na=False)["subject_id"].tolist() == ["'" + evil]
    assert {c["subject_id"] for c in json.loads(out.with_suffix(".json").read_text())["cells"]} == {evil}
    ok = rows[rows["status"] == "ok"]
    assert pd.to_numeric(ok["p_all"]).between(0, 1).all()


def test_spreadsheet_safe_touches_text_only():
    from blastscope.engine.atomic import spreadsheet_safe

    frame = pd.DataFrame({"t": ["=1+1", "+x", "-y", "@z", "ok", "\tq"], "n": [-1.5, 2.0, -3.0, 0.0, 1.0, 2.0]})
    safe = spreadsheet_safe(frame)
    assert safe["t"].tolist() == ["'=1+1", "'+x", "'-y", "'@z", "ok", "'\tq"] and safe["n"].tolist() == frame["n"].tolist()
    assert frame["t"].iloc[0] == "=1+1"  # the input is not changed


@pytest.mark.parametrize("subject", ["[/]", "[link=http://127.0.0.1/x]P1[/link]", "\x1b[31mRED\x1b[0m", "[bold]B"])
def test_names_are_shown_literally_never_as_markup_or_escapes(tiny_bundle, cells, tmp_path, subject):
    """A subject id is shown as written: rich markup (``[/]`` used to end in MarkupError after the outputs
    were written) is not interpreted, a link is not hidden, terminal escape sequences are removed."""
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(cells), "--out", str(out), "--subject", subject])
    assert result.exit_code == 0, result.output
    shown = subject.replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert shown in result.output and "\x1b[" not in result.output
    assert json.loads(out.with_suffix(".json").read_text())["subjects"][0]["subject_id"] == subject
