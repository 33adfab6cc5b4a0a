"""`blastscope data expand`: the paper's Dataset 1 / Dataset 2 written to disk, reproducibly by seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main
from blastscope.data.decode import read_image
from blastscope.data.readers import read_dataset
from blastscope.data.synth import SynthConfig, write_synthetic_cnmc
from blastscope.transforms.conventional import CONVENTIONAL_AUGMENTATIONS


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("expand_src") / "cnmc"
    write_synthetic_cnmc(root, SynthConfig(train_subjects=2, validation_subjects=1, test_subjects=1,
                                           cells_per_subject=(2, 2), folds=2, size=200, seed=2))
    return root


def _expand(src: Path, out: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["data", "expand", str(src), str(out), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_dataset2_layout_and_provenance(source, tmp_path):
    """Every training original gives itself, one copy per conventional augmentation and a PCA copy;
    held-out images are not expanded; subjects.csv keeps every copy with its source's subject."""
    out = tmp_path / "d2"
    _expand(source, out, "--copies", "1", "--seed", "5", "--pca")
    index = read_dataset(source)
    train = index[(index["label"] != "") & ~index["split"].isin(("validation", "test"))]
    files = _files(out)
    assert len(files) == len(train) * (1 + len(CONVENTIONAL_AUGMENTATIONS) + 1)
    sources = pd.read_csv(out / "sources.csv", dtype=str)
    assert sorted(sources["file"]) == sorted(files)
    assert set(sources["source"]) == set(train["path"])
    subject_of = dict(zip(train["path"], train["subject_id"]))
    assert (sources["subject_id"] == sources["source"].map(subject_of)).all()
    assert (sources["file"].str.split("/").str[0] == sources["label"]).all()
    expanded = read_dataset(out, subjects_csv=out / "subjects.csv")
    assert len(expanded) == len(files) and set(expanded["subject_id"]) == set(train["subject_id"])
    for _, row in sources[sources["file"].str.endswith("_orig.png")].iterrows():
        np.testing.assert_array_equal(read_image(out / row["file"]), read_image(row["source"]))


def test_dataset1_has_no_pca_copies(source, tmp_path):
    out = tmp_path / "d1"
    _expand(source, out, "--copies", "2", "--seed", "5")
    names = list(_files(out))
    assert not any("_pca" in n for n in names)
    assert sum("_c001_" in n for n in names) == sum(n.endswith("_orig.png") for n in names) * len(CONVENTIONAL_AUGMENTATIONS)


def test_same_seed_writes_identical_files_other_seed_differs(source, tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    _expand(source, a, "--seed", "11", "--pca")
    _expand(source, b, "--seed", "11", "--pca")
    _expand(source, c, "--seed", "12", "--pca")
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    assert fa.keys() == fc.keys()
    differs = {n for n in fa if fa[n] != fc[n]}
    assert any("_rotate" in n for n in differs) and any("_pca" in n for n in differs)
    assert not any(n.endswith(("_orig.png", "_reflect_x.png", "_grayscale.png")) for n in differs)


def test_negative_copies_fail(source, tmp_path):
    result = CliRunner().invoke(main, ["data", "expand", str(source), str(tmp_path / "x"), "--copies", "-1"])
    assert result.exit_code == 2 and "copies" in result.output
