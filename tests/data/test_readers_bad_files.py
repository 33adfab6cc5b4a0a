"""Readers and ``data check`` on folders with bad files: every file is reported with its reason."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from blastscope.cli import main
from blastscope.data.check import check_dataset
from blastscope.data.index import IndexError_
from blastscope.data.readers import read_dataset


@pytest.fixture
def damaged_cnmc(tmp_path, cnmc_samples):
    """The 10 real C-NMC cells plus one file of every kind of damage, under valid C-NMC names."""
    root = tmp_path / "cnmc"
    shutil.copytree(cnmc_samples, root)
    real = sorted(root.glob("*.bmp"))[0].read_bytes()
    bad = {
        "UID_90_1_1_all.bmp": b"",
        "UID_91_1_1_all.bmp": real[: len(real) // 2],
        "UID_92_1_1_all.bmp": b"<html>not an image</html>\n" * 20,
        "UID_93_1_1_all.bmp": b"BM" + (54).to_bytes(4, "little") + b"\x00" * 4 + (54).to_bytes(4, "little")
        + (40).to_bytes(4, "little") + (100_000).to_bytes(4, "little") * 2 + b"\x01\x00\x18\x00" + b"\x00" * 24,
    }
    for name, content in bad.items():
        (root / name).write_bytes(content)
    return root, {str((root / n).resolve()) for n in bad}


def test_check_reports_every_unreadable_file_with_its_reason(damaged_cnmc):
    root, bad = damaged_cnmc
    report = check_dataset(root)
    assert not report["ok"] and report["images"] == 14
    reported = {p["file"]: p["problem"] for p in report["problems"]}
    assert set(reported) == bad
    reasons = {name.rsplit("/", 1)[1]: why for name, why in reported.items()}
    assert "empty file" in reasons["UID_90_1_1_all.bmp"]
    assert "truncated" in reasons["UID_91_1_1_all.bmp"]
    assert "not a decodable image" in reasons["UID_92_1_1_all.bmp"]
    assert "exceeds the limit" in reasons["UID_93_1_1_all.bmp"]
    assert report["sizes"] == {"450x450": 10}  # the good cells were still all read


def test_data_check_cli_lists_each_bad_file_and_fails(damaged_cnmc):
    root, bad = damaged_cnmc
    result = CliRunner().invoke(main, ["data", "check", str(root)], terminal_width=400)
    assert result.exit_code == 1
    for path in bad:
        assert path in result.output.replace("\n", "")


def test_names_that_do_not_parse(tmp_path, cnmc_samples):
    root = tmp_path / "loose"
    shutil.copytree(cnmc_samples, root)
    src = sorted(root.glob("*.bmp"))[0]
    odd = ["cell_7.bmp", "UID_1_1_all.bmp", "UID_1_1_1_blast.bmp", "UID_x1_2_3_hem.bmp", "UID_1_1_1_all.bmp.bmp"]
    for name in odd:
        shutil.copy(src, root / name)
    with pytest.raises(IndexError_) as err:
        read_dataset(root)
    assert "5 files" in str(err.value) and all(name in str(err.value) for name in odd)
    report = check_dataset(root)
    named = [p for p in report["problems"] if "does not follow" in p["problem"]]
    assert sorted(p["file"].rsplit("/", 1)[1] for p in named) == sorted(odd)
    assert report["images"] == 10 and report["sizes"] == {"450x450": 10}  # the rest is still checked


def test_official_layout_name_and_folder_disagree(tmp_path, tiny_synthetic):
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    cell = sorted((root / "training_data" / "fold_0" / "all").glob("*.bmp"))[0]
    shutil.move(cell, root / "training_data" / "fold_0" / "hem" / cell.name)
    with pytest.raises(IndexError_, match="name says all, folder says hem"):
        read_dataset(root)
    report = check_dataset(root)
    assert [p["problem"] for p in report["problems"]] == ["name says all, folder says hem"]
