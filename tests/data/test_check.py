"""`data check`: counts and every problem at once."""
from __future__ import annotations

import shutil

from blastscope.data.check import check_dataset


def test_real_samples_report(cnmc_samples):
    report = check_dataset(cnmc_samples)
    assert report["ok"] and report["images"] == 10
    assert report["subjects"] == {"all": 4, "hem": 3}
    assert report["sizes"] == {"450x450": 10}


def test_problems_are_all_reported(tmp_path, cnmc_samples):
    root = tmp_path / "d"
    shutil.copytree(cnmc_samples, root)
    (root / "UID_7_1_1_all.bmp").write_bytes(b"")  # unreadable
    shutil.copy(root / "UID_1_2_2_all.bmp", root / "UID_H9_1_1_hem.bmp")  # same pixels, two subjects and classes
    report = check_dataset(root)
    assert not report["ok"]
    problems = " | ".join(f"{p['file']}: {p['problem']}" for p in report["problems"])
    assert "UID_7_1_1_all.bmp: empty file" in problems
    assert "identical files under two subjects and two classes" in problems and "UID_H9_1_1_hem.bmp" in problems


def test_missing_folder(tmp_path):
    report = check_dataset(tmp_path / "none")
    assert not report["ok"] and "no such directory" in report["problems"][0]["problem"]
