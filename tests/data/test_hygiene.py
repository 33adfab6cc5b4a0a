"""Data hygiene on real files: duplicated cells, subjects with two labels, empty classes, folds without a class.

Each is caught by ``data check`` and again before training (plan_cv / run_cv).
"""
from __future__ import annotations

import logging
import shutil

import cv2
import pytest

from blastscope.config import resolve_config
from blastscope.data.check import check_dataset
from blastscope.data.decode import read_image
from blastscope.data.index import IndexError_
from blastscope.data.readers import read_dataset
from blastscope.evaluation import cross_validation as cv
from blastscope.evaluation.cross_validation import plan_cv, run_cv


def _problems(report: dict) -> list[str]:
    return [f"{p.get('severity', 'error')}: {p['problem']}" for p in report["problems"]]


@pytest.fixture
def loose(tmp_path, cnmc_samples):
    root = tmp_path / "loose"
    shutil.copytree(cnmc_samples, root)
    return root


def test_identical_pixels_under_two_subjects_of_one_class(loose):
    shutil.copy(loose / "UID_1_2_2_all.bmp", loose / "UID_77_1_1_all.bmp")
    problems = _problems(check_dataset(loose))
    assert len(problems) == 1
    assert problems[0].startswith("warning: identical files under two subjects:") and "two classes" not in problems[0]
    assert "UID_1_2_2_all.bmp" in problems[0] and "UID_77_1_1_all.bmp" in problems[0]


def test_identical_pixels_under_two_classes_even_when_re_encoded(tmp_path, cnmc_samples):
    """The check compares decoded pixels, so a BMP copied as PNG into another class is still found."""
    root = tmp_path / "folders"
    for c in ("blast", "normal"):
        (root / c).mkdir(parents=True)
    cells = sorted(cnmc_samples.glob("*.bmp"))
    for i, cell in enumerate(cells[:4]):
        shutil.copy(cell, root / ("blast" if i % 2 else "normal") / f"cell_{i}.bmp")
    cv2.imwrite(str(root / "normal" / "copy.png"), cv2.imread(str(cells[1])))  # cell_1 sits in blast/
    report = check_dataset(root)
    assert report["layout"] == "folder"
    dupes = [p for p in _problems(report) if "identical pixels" in p]
    assert len(dupes) == 1 and "two classes" in dupes[0] and "copy.png" in dupes[0] and "cell_1.bmp" in dupes[0]
    # a check cv does not make (it compares file bytes): a warning that says so
    extra = [p for p in report["problems"] if "identical pixels" in p["problem"]]
    assert extra[0]["severity"] == "warning"
    assert extra[0]["problem"].startswith("identical pixels in files with different bytes (extra check, not made by cv) "
                                          "under two images and two classes")


def test_identical_files_warned_before_training(loose, tmp_path, caplog, monkeypatch):
    shutil.copy(loose / "UID_H10_1_1_hem.bmp", loose / "UID_H88_1_1_hem.bmp")

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(cv, "_fit_arm", stop)
    config = resolve_config("sd_net", "quick", ["data.folds=2", "data.resize=48"])
    with caplog.at_level(logging.WARNING), pytest.raises(Stop):
        run_cv(config, read_dataset(loose), tmp_path / "run")
    warned = [r.getMessage() for r in caplog.records if "identical files under two subjects" in r.getMessage()]
    assert len(warned) == 1 and "UID_H88_1_1_hem.bmp" in warned[0]


def test_subject_with_two_labels(loose, tmp_path):
    hem = sorted(loose.glob("*hem.bmp"))[0]
    subject = hem.name.split("_")[1]
    shutil.copy(sorted(loose.glob("*all.bmp"))[0], loose / f"UID_{subject}_9_9_all.bmp")
    problems = _problems(check_dataset(loose))
    assert f"error: subject {subject} has cells with two labels" in problems
    with pytest.raises(IndexError_, match=f"two labels: {subject}"):
        plan_cv(resolve_config("sd_net", "quick", ["data.folds=2"]), read_dataset(loose))


def test_empty_class_in_cnmc_official_layout(tmp_path, tiny_synthetic):
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    for cell in (root / "training_data").rglob("hem/*.bmp"):
        cell.unlink()
    report = check_dataset(root)
    assert not report["ok"] and "error: class 'hem' has no training images" in _problems(report)
    with pytest.raises(ValueError, match=r"no images of class\(es\) \['hem'\]"):
        plan_cv(resolve_config("sd_net", "quick"), read_dataset(root))


def test_empty_class_folder(tmp_path, cnmc_samples):
    root = tmp_path / "folders"
    (root / "blast").mkdir(parents=True)
    (root / "normal").mkdir()
    shutil.copy(sorted(cnmc_samples.glob("*.bmp"))[0], root / "blast" / "a.bmp")
    report = check_dataset(root)
    assert not report["ok"] and "class folder 'normal' holds no images" in report["problems"][0]["problem"]


def test_dataset_fold_without_a_class_is_a_warning(tmp_path, tiny_synthetic):
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    for cell in (root / "training_data" / "fold_1" / "hem").glob("*.bmp"):
        cell.unlink()
    report = check_dataset(root)
    assert report["ok"]  # a warning, not an error
    assert "warning: dataset fold 1 has no 'hem' cells" in _problems(report)


def test_cross_validation_fold_without_a_class_is_warned(tiny_synthetic, caplog):
    """With one hem subject and three subject-level folds, two validation folds have no hem cell."""
    index = read_dataset(tiny_synthetic)
    hem_subjects = sorted(set(index.loc[index["label"] == "hem", "subject_id"]))
    keep = (index["label"] != "hem") | (index["subject_id"] == hem_subjects[0]) | index["split"].isin(["validation", "test"])
    with caplog.at_level(logging.WARNING):
        plan = plan_cv(resolve_config("sd_net", "quick"), index[keep])
    lacking = [r.getMessage() for r in caplog.records if "lacks class" in r.getMessage()]
    folds_without_hem = {k for k in range(3) if not (plan.index.loc[plan.index["fold"] == k, "label"] == "hem").any()}
    assert len(folds_without_hem) == 2
    assert sorted(lacking) == sorted(f"validation fold {k} lacks class(es) ['hem']" for k in folds_without_hem)


def test_real_samples_have_no_hygiene_problems(cnmc_samples):
    assert check_dataset(cnmc_samples)["problems"] == []
    assert read_image(sorted(cnmc_samples.glob("*.bmp"))[0]).shape == (450, 450, 3)
