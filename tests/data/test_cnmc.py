"""C-NMC reader: names, the official layout, and loose folders."""
from __future__ import annotations

import pytest

from blastscope.data.cnmc import NameError_, parse_cnmc_name, read_cnmc
from blastscope.data.index import IndexError_


@pytest.mark.parametrize("name,subject,label", [
    ("UID_h3_4_1_hem.bmp", "H3", "hem"), ("UID_H3_5_1_hem.bmp", "H3", "hem"),
    ("UID_53_4_8_all.bmp", "53", "all"), ("uid_2_1_2_ALL.BMP", "2", "all"),
])
def test_parse_names_case_insensitively(name, subject, label):
    parsed = parse_cnmc_name(name)
    assert (parsed.subject_id, parsed.label) == (subject, label)


@pytest.mark.parametrize("name", ["UID_1_2_all.bmp", "renamed_unknown_label.bmp", "UID_1_2_3_blast.bmp", "UID_1_2_3_all.png"])
def test_bad_names_raise(name):
    with pytest.raises(NameError_, match="does not match"):
        parse_cnmc_name(name)


def test_real_samples(cnmc_samples):
    index = read_cnmc(cnmc_samples)
    assert len(index) == 10
    subjects = index.groupby("label")["subject_id"].nunique().to_dict()
    assert subjects == {"all": 4, "hem": 3}
    assert set(index.loc[index.label == "hem", "subject_id"]) == {"H2", "H3", "H10"}


def test_official_layout(tiny_synthetic):
    index = read_cnmc(tiny_synthetic)
    train = index[index.split == "train"]
    assert set(train.fold) == {0, 1, 2}
    validation = index[index.split == "validation"]
    assert len(validation) > 0 and (validation.label != "").all() and (validation.subject_id != "").all()
    test = index[index.split == "test"]
    assert len(test) > 0 and (test.label == "").all()  # the final-phase test set ships unlabelled
    # every file named in the labels CSV exists and the subject ids of held-out data are not in training
    assert not set(validation.subject_id) & set(train.subject_id)


def test_training_file_with_bad_name_is_reported(tiny_synthetic, tmp_path):
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(tiny_synthetic, tree)
    bad = tree / "training_data" / "fold_0" / "all" / "IMG_0001.bmp"
    bad.write_bytes(b"x")
    with pytest.raises(IndexError_, match="IMG_0001.bmp"):
        read_cnmc(tree)


def test_label_csv_with_wrong_columns(tiny_synthetic, tmp_path):
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(tiny_synthetic, tree)
    csv = next((tree / "validation_data").glob("*_labels.csv"))
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(IndexError_, match="expected columns"):
        read_cnmc(tree)
