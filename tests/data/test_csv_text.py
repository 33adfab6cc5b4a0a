"""A NUL byte in a labels or subjects CSV is one error naming the CSV and the line, in every reader.

Python 3.11's csv module passes NUL bytes through: before, a NUL in a C-NMC ``new_names`` cell
reached ``os.stat`` (an ``embedded null byte`` traceback in ``cv``) and ``data check`` said
"no problems found" for a subject CSV whose ids held one.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from blastscope.data.check import check_dataset
from blastscope.data.csv_text import CsvTextError, csv_text
from blastscope.data.index import IndexError_
from blastscope.data.readers import read_dataset
from blastscope.inference.files import read_subjects_csv


def _folder_set(root):
    rng = np.random.default_rng(0)
    for c in ("ALL", "HEM"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / c / f"{c}{i}.png")
    return root


def test_csv_text_names_the_line_of_the_nul(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"file,subject_id\na.png,P1\nb.png,P\x002\n")
    with pytest.raises(CsvTextError, match=r"s\.csv, line 3: a NUL byte"):
        csv_text(path)
    path.write_bytes(b"\xef\xbb\xbffile,subject_id\na.png,P1\n")
    assert csv_text(path).read().startswith("file,")  # the BOM is dropped


def test_subjects_csv_with_a_nul_in_data_check_and_the_reader(tmp_path):
    root = _folder_set(tmp_path / "ds")
    csv_path = tmp_path / "subjects.csv"
    csv_path.write_text("file,subject_id\nALL/ALL0.png,P1\nALL/ALL1.png,P\x001\nHEM/HEM0.png,P2\nHEM/HEM1.png,P2\n")
    with pytest.raises(IndexError_, match=r"subjects\.csv, line 3: a NUL byte"):
        read_dataset(root, subjects_csv=csv_path)
    report = check_dataset(root, subjects_csv=csv_path)
    assert not report["ok"]
    assert any(f"{csv_path}, line 3: a NUL byte" in p["problem"] for p in report["problems"])
    with pytest.raises(ValueError, match=r"subjects\.csv, line 3: a NUL byte"):
        read_subjects_csv(csv_path)  # predict --subjects-csv


def test_cnmc_labels_csv_with_a_nul_in_a_file_name(tmp_path, tiny_synthetic):
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    labels = next((root / "validation_data").glob("*_labels.csv"))
    lines = labels.read_text().splitlines()
    lines[1] = lines[1].replace(".bmp", "\0.bmp")
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(IndexError_, match=r"_labels\.csv, line 2: a NUL byte"):
        read_dataset(root)
    report = check_dataset(root, decode=False)
    assert not report["ok"] and "line 2: a NUL byte" in report["problems"][0]["problem"]
