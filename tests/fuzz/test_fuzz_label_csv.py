"""Property tests of the label/subject CSV files: any bytes in the file give an index or an
IndexError_ whose message names the CSV file, never another exception."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blastscope.data.cnmc import read_cnmc
from blastscope.data.folder import read_folder_per_class, read_subject_csv
from blastscope.data.index import IndexError_

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CSV_CHARS = st.sampled_from(list(',"\n\r\t ;\x00\\') + list("abcUID_H01239.bmpéß∂") + ["\ufeff", "\u2028"])


def _csv_texts(header: str) -> st.SearchStrategy[bytes]:
    """Raw bytes, free text after a valid header, and header + rows with random field counts."""
    free = st.text(CSV_CHARS, max_size=200).map(lambda t: (header + t).encode("utf-8"))
    field = st.text(CSV_CHARS, max_size=12)
    rows = st.lists(st.lists(field, min_size=0, max_size=5), max_size=6).map(
        lambda rs: (header + "".join(",".join(r) + "\n" for r in rs)).encode("utf-8"))
    encoded = st.text(max_size=80).flatmap(lambda t: st.sampled_from(
        [(header + t).encode("utf-16"), (header + t).encode("latin-1", "replace"), (header + t).encode("utf-8-sig")]))
    return st.one_of(st.binary(max_size=300), free, rows, encoded)


@pytest.fixture(scope="module")
def cnmc_tree(tmp_path_factory, cnmc_samples) -> Path:
    root = tmp_path_factory.mktemp("csvfuzz") / "cnmc"
    for label in ("all", "hem"):
        (root / "training_data" / "fold_0" / label).mkdir(parents=True)
        src = sorted(cnmc_samples.glob(f"*_{label}.bmp"))[0]
        shutil.copy(src, root / "training_data" / "fold_0" / label / src.name)
    (root / "validation_data" / "prelim").mkdir(parents=True)
    shutil.copy(sorted(cnmc_samples.glob("*.bmp"))[0], root / "validation_data" / "prelim" / "1.bmp")
    return root


@SETTINGS
@given(_csv_texts("Patient_ID,new_names,labels\n"))
@example(b"Patient_ID,new_names,labels\nUID_1_1_1_all.bmp\n")  # a row with missing fields
@example(b"Patient_ID,new_names,labels\nUID_1_1_1_all.bmp,1.bmp,1,extra\n")
@example(b"Patient_ID,new_names,labels\n\"UID_1_1_1_all.bmp,1.bmp,1\n")  # unterminated quote
@example(b"Patient_ID,new_names,labels\nUID_1_1_1_all.bmp,1.bmp,\x001\n")
@example(b"\xff\xfe\x00garbage")
@example(b"Patient_ID,new_names,labels\n" + b"x" * 200_000 + b",1.bmp,1\n")  # beyond csv's field size limit
@example(b"Patient_ID,new_names,labels\nUID_1_1_1_all.bmp,1.bmp,1\n")  # valid
def test_cnmc_labels_csv(cnmc_tree, content):
    csv_path = cnmc_tree / "validation_data" / "prelim_labels.csv"
    csv_path.write_bytes(content)
    try:
        index = read_cnmc(cnmc_tree)
    except IndexError_ as e:
        assert str(csv_path) in str(e)
        return
    held = index[index["split"] == "validation"]
    assert set(held["label"]) <= {"all", "hem", "aml"} and (held["subject_id"].str.len() > 0).all()


@SETTINGS
@given(_csv_texts("file,subject_id\n"))
@example(b"file,subject_id\na.bmp\n")
@example(b"file,subject_id\n\"a.bmp,s1\n")
@example(b"path,subject_id\nblast/a.bmp,\x00\n")
@example(b"file,subject_id\n" + b"y" * 200_000 + b",s\n")
def test_subject_csv(tmp_path, content):
    csv_path = tmp_path / "subjects.csv"
    csv_path.write_bytes(content)
    try:
        mapping = read_subject_csv(csv_path)
    except IndexError_ as e:
        assert str(csv_path) in str(e)
        return
    assert all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in mapping.items())


def test_subject_csv_through_the_folder_reader(tmp_path, cnmc_samples):
    for c in ("blast", "normal"):
        (tmp_path / "d" / c).mkdir(parents=True)
        shutil.copy(sorted(cnmc_samples.glob("*.bmp"))[0], tmp_path / "d" / c / "a.bmp")
    bad = tmp_path / "s.csv"
    bad.write_bytes(b"file,subject_id\n\"blast/a.bmp,s1\n")
    with pytest.raises(IndexError_, match=str(bad)):
        read_folder_per_class(tmp_path / "d", subjects_csv=bad)
