"""Folder-per-class and ALL-IDB readers on real images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from blastscope.data.allidb import read_all_idb1, read_all_idb2
from blastscope.data.decode import read_image
from blastscope.data.index import IndexError_
from blastscope.data.readers import detect_layout, read_dataset


def test_aml_sample_rgba_tiffs(shared):
    root = shared("aml-cytomorphology-sample")
    index = read_dataset(root)
    assert detect_layout(root) == "folder"
    assert len(index) == 50 and index.label.value_counts().to_dict() == {c: 10 for c in ["EOS", "LYT", "MON", "MYO", "NGS"]}
    assert (index.subject_id == "").all()
    assert read_image(index.path.iloc[0]).shape[2] == 3


def test_class_map_says_which_folders_it_leaves_out(shared, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        read_dataset(shared("aml-cytomorphology-sample"), class_map={"MYO": "aml", "LYT": "normal", "MON": "monocyte"})
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "leaves out the class folder(s) EOS (10 images), NGS (10 images)" in text


def test_class_map_selects_and_renames(shared):
    index = read_dataset(shared("aml-cytomorphology-sample"), class_map={"MYO": "aml", "LYT": "normal"})
    assert index.label.value_counts().to_dict() == {"aml": 10, "normal": 10}


@pytest.mark.parametrize("folder,n,classes", [("pbc-sample", 80, 8), ("all-smear-taleqani", 1639, 4)])
def test_other_real_sets(folder, n, classes, shared):
    index = read_dataset(shared(folder))
    assert len(index) == n and index.label.nunique() == classes


def test_subjects_csv(tmp_path, shared):
    root = shared("pbc-sample")
    index = read_dataset(root)
    rel = [p.split(str(root) + "/")[-1] for p in index.path]
    csv = tmp_path / "subjects.csv"
    csv.write_text("file,subject_id\n" + "".join(f"{r},P{i % 5}\n" for i, r in enumerate(rel)))
    with_subjects = read_dataset(root, subjects_csv=csv)
    assert with_subjects.subject_id.nunique() == 5
    csv.write_text("file,subject_id\n" + f"{rel[0]},P1\n")
    with pytest.raises(IndexError_, match="no subject id"):
        read_dataset(root, subjects_csv=csv)


def test_empty_class_folder_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(IndexError_, match="holds no images"):
        read_dataset(tmp_path)


def test_empty_directory(tmp_path):
    with pytest.raises(IndexError_, match="empty directory"):
        read_dataset(tmp_path)


def _real_cell(cnmc_samples, k=0):
    return read_image(sorted(cnmc_samples.glob("*.bmp"))[k])


def test_all_idb2(tmp_path, cnmc_samples):
    for i, label in enumerate([1, 0, 1]):
        cv2.imwrite(str(tmp_path / f"Im{i + 1:03d}_{label}.tif"), _real_cell(cnmc_samples, i)[..., ::-1])
    assert detect_layout(tmp_path) == "all-idb2"
    index = read_all_idb2(tmp_path)
    assert index.label.tolist() == ["all", "hem", "all"] and (index.subject_id == "").all()


def test_all_idb1_crops_centroids(tmp_path, cnmc_samples):
    field = _real_cell(cnmc_samples)
    cv2.imwrite(str(tmp_path / "Im001_1.jpg"), field[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    (tmp_path / "Im001_1.xyc").write_text("225 225\n10 400\n")
    assert detect_layout(tmp_path) == "all-idb1"
    index = read_all_idb1(tmp_path, tmp_path / "crops", crop_size=101)
    assert len(index) == 2 and set(index.subject_id) == {"field:Im001_1"}
    crop = read_image(index.path.iloc[0])
    assert crop.shape == (101, 101, 3)
    assert np.abs(crop.astype(int) - field[175:276, 175:276].astype(int)).mean() < 3  # JPEG rounding only
    border = read_image(index.path.iloc[1])
    assert (border[:, :40] == 0).all()  # zero padding left of the field


def test_all_idb1_centroid_outside_image(tmp_path, cnmc_samples):
    cv2.imwrite(str(tmp_path / "Im001_1.jpg"), _real_cell(cnmc_samples)[..., ::-1])
    (tmp_path / "Im001_1.xyc").write_text("9999 5\n")
    with pytest.raises(IndexError_, match="outside"):
        read_all_idb1(tmp_path, tmp_path / "crops")
