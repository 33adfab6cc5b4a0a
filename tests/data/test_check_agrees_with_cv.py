"""``blastscope data check`` and ``blastscope cv`` share one set of index checks
(:func:`blastscope.data.check.index_problems`): what cv refuses is an error of data check, what cv
warns about is a warning, with the same words.

Before, data check said "no problems found" for a held-out patient who is also in training (cv
refused), for byte-identical files of the smear set (cv warned "under two subjects ... data check
finds identical pixels too"; data check found nothing, its identical-pixel check was an error in
data check and a warning in cv), for a subject CSV giving one file two subjects through its path and
its bare name, and for a symbolic link loop.
"""
from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from blastscope.config import resolve_config
from blastscope.data.check import check_dataset
from blastscope.data.index import IndexError_
from blastscope.data.readers import read_dataset, symlink_loops
from blastscope.evaluation import cross_validation as cv
from blastscope.evaluation.cross_validation import plan_cv, run_cv


class _Stop(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Stop


def _cv_warnings(index, overrides, tmp_path, caplog, monkeypatch) -> list[str]:
    """cv's log up to the first training step (decoding, digests and the shared checks run)."""
    monkeypatch.setattr(cv, "_fit_arm", _stop)
    config = resolve_config("sd_net", "quick", ["data.resize=48", *overrides])
    with caplog.at_level(logging.WARNING), pytest.raises(_Stop):
        run_cv(config, index, tmp_path / "run")
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_held_out_patient_in_training_is_an_error_in_both(tmp_path, tiny_synthetic):
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    labels = next((root / "validation_data").glob("*_labels.csv"))
    train_subject = sorted((root / "training_data" / "fold_0" / "all").glob("*.bmp"))[0].name.split("_")[1]
    lines = labels.read_text().splitlines()
    patient = lines[1].split(",")[0]
    moved = patient.split("_")[1]
    labels.write_text("\n".join(line.replace(f"UID_{moved}_", f"UID_{train_subject}_") for line in lines) + "\n")
    message = f"subjects appear in both training and held-out data: ['{train_subject}']"
    report = check_dataset(root, decode=False)
    assert not report["ok"] and report["grouping"] == "subject"
    assert [p for p in report["problems"] if p["problem"] == message and p["severity"] == "error"]
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_cv(resolve_config("sd_net", "quick", ["data.folds=2"]), read_dataset(root))


@pytest.fixture
def smear_pair(tmp_path, shared):
    """Six smear images with the byte-identical pair Pro-074/075 (the set has no subject ids)."""
    smear = shared("all-smear-taleqani")
    root = tmp_path / "smear"
    for folder, names in (("pro_malignant", ["WBC-Malignant-Pro-074.jpg", "WBC-Malignant-Pro-075.jpg", "WBC-Malignant-Pro-001.jpg"]),
                          ("benign", sorted(p.name for p in (smear / "benign").iterdir())[:3])):
        (root / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(smear / folder / name, root / folder / name)
    return root


def test_byte_identical_smear_files_are_the_same_warning_in_both(smear_pair, tmp_path, caplog, monkeypatch):
    report = check_dataset(smear_pair)
    assert report["grouping"] == "image" and report["ok"]
    same = [p for p in report["problems"] if p["problem"].startswith("identical files under two images: ")]
    assert len(same) == 1 and same[0]["severity"] == "warning"
    assert "Pro-074.jpg" in same[0]["problem"] and "Pro-075.jpg" in same[0]["problem"]
    assert not [p for p in report["problems"] if "identical pixels" in p["problem"]]  # the bytes are equal: said once
    warned = _cv_warnings(read_dataset(smear_pair), ["data.grouping=image", "data.fold_mode=image", "data.folds=2",
                                                    "data.classes=[benign,pro_malignant]", "data.positive=pro_malignant"],
                          tmp_path, caplog, monkeypatch)
    dupes = [w for w in warned if "identical files" in w]
    assert len(dupes) == 1 and dupes[0].startswith(same[0]["problem"]), dupes
    assert "two subjects" not in dupes[0] and "finds identical pixels" not in dupes[0]


def test_grouping_option_words_and_severity(smear_pair):
    report = check_dataset(smear_pair, grouping="subject")
    assert report["grouping"] == "subject" and not report["ok"]  # cv refuses data without subject ids
    assert any("6 images have no subject id" in p["problem"] and p["severity"] == "error" for p in report["problems"])


def _folder_set(root, n=2):
    rng = np.random.default_rng(1)
    for c in ("ALL", "HEM"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / c / f"{c.lower()}{i}.png")
    return root


def test_path_key_and_bare_name_key_giving_two_subjects(tmp_path):
    root = _folder_set(tmp_path / "ds")
    csv_path = tmp_path / "subjects.csv"
    csv_path.write_text("file,subject_id\nALL/all0.png,P1\nall0.png,P2\nall1.png,P1\nHEM/hem0.png,P3\nHEM/hem1.png,P3\n")
    message = "'ALL/all0.png' -> 'P1' and 'all0.png' -> 'P2'"
    with pytest.raises(IndexError_, match=f"{csv_path.name}: 1 image\\(s\\) mapped to two subjects") as e:
        read_dataset(root, subjects_csv=csv_path)  # what cv reads
    assert message in str(e.value)
    report = check_dataset(root, subjects_csv=csv_path)
    assert not report["ok"] and message in report["problems"][0]["problem"] and str(csv_path) in report["problems"][0]["problem"]


def test_symlink_loops_are_listed(tmp_path, caplog):
    """Python 3.11's rglob does not descend into linked folders, so a loop was silently left out."""
    root = _folder_set(tmp_path / "ds")
    os.symlink("..", root / "ALL" / "up")
    os.symlink("self", root / "HEM" / "self")
    assert symlink_loops(root) == sorted([str(root / "ALL" / "up"), str(root / "HEM" / "self")])
    with caplog.at_level(logging.WARNING):
        index = read_dataset(root)  # what cv reads
    assert len(index) == 4
    logged = [r.getMessage() for r in caplog.records if "symbolic link loop" in r.getMessage()]
    assert len(logged) == 2 and str(root / "ALL" / "up") in logged[0] + logged[1]
    report = check_dataset(root)
    loops = [p for p in report["problems"] if "symbolic link loop" in p["problem"]]
    assert {p["file"] for p in loops} == {str(root / "ALL" / "up"), str(root / "HEM" / "self")}
    assert all(p["severity"] == "warning" for p in loops) and report["ok"]
