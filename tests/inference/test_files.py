"""Input expansion (files, folders, globs) and subject-id resolution."""
from __future__ import annotations

import pytest

from blastscope.inference.files import (
    collect_inputs,
    read_subjects_csv,
    resolve_subjects,
)


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_globs_and_missing(tmp_path):
    a = _touch(tmp_path / "a" / "UID_1_1_1_all.bmp")
    b = _touch(tmp_path / "a" / "deep" / "UID_H2_1_1_hem.BMP")
    _touch(tmp_path / "a" / "notes.txt")
    c = _touch(tmp_path / "b" / "cell.png")
    files, bad = collect_inputs([tmp_path / "a", str(tmp_path / "b" / "*.png"), a, tmp_path / "nope.bmp",
                                 str(tmp_path / "b" / "*.jpg"), tmp_path / "empty_dir"])
    assert sorted(files) == sorted([a, b, c])  # text file skipped, duplicate a counted once
    reasons = {x.file: x.reason for x in bad}
    assert reasons[str(tmp_path / "nope.bmp")] == "file not found"
    assert "matches no image" in reasons[str(tmp_path / "b" / "*.jpg")]


def test_explicit_file_kept_whatever_its_suffix(tmp_path):
    odd = _touch(tmp_path / "scan.dat")
    files, bad = collect_inputs([odd])
    assert files == [odd] and bad == []


def test_subject_precedence(tmp_path):
    cnmc = tmp_path / "UID_h3_4_1_hem.bmp"
    plain = tmp_path / "17.bmp"
    listed = tmp_path / "sub" / "UID_5_1_1_all.bmp"
    mapping = {"17.bmp": "P17", str(listed): "override"}
    assert resolve_subjects([cnmc, plain, listed], subjects=mapping) == ["H3", "P17", "override"]
    assert resolve_subjects([cnmc, plain]) == ["H3", ""]
    assert resolve_subjects([cnmc, plain], subject="patient-9", subjects=mapping) == ["patient-9"] * 2
    with pytest.raises(ValueError, match="non-empty"):
        resolve_subjects([cnmc], subject="  ")


def test_subjects_csv(tmp_path):
    good = tmp_path / "s.csv"
    good.write_text("file,subject_id,extra\n1.bmp,P1,x\n2.bmp,P2,y\n")
    assert read_subjects_csv(good) == {"1.bmp": "P1", "2.bmp": "P2"}
    bad = tmp_path / "bad.csv"
    bad.write_text("name,patient\n1.bmp,P1\n")
    with pytest.raises(ValueError, match="expected columns"):
        read_subjects_csv(bad)
