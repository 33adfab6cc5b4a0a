"""C-NMC files whose names cannot be indexed: one error listing every one, or left out into ``problems``."""
from __future__ import annotations

import pickle
import shutil

import pytest

from blastscope.data.cnmc import BadNamesError
from blastscope.data.index import IndexError_
from blastscope.data.readers import read_dataset

ODD = ["foo.bmp", "cell_7.bmp", "UID_1_1_all.bmp", "UID_1_1_1_blast.bmp", "UID_x1_2_3_hem.bmp",
       "UID_1_1_1_all.bmp.bmp", "UID_.bmp"]  # more than five: none may hide behind "and N more"


@pytest.fixture
def official(tmp_path, tiny_synthetic):
    """The synthetic official tree plus odd names in class folders and one cell in the wrong class folder."""
    root = tmp_path / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    all_dir, hem_dir = root / "training_data" / "fold_0" / "all", root / "training_data" / "fold_0" / "hem"
    cell = sorted(all_dir.glob("*.bmp"))[0]
    for i, name in enumerate(ODD):
        shutil.copy(cell, (all_dir if i % 2 else hem_dir) / name)
    moved = hem_dir / cell.name
    shutil.move(cell, moved)
    bad = {str((d / n).resolve()) for i, n in enumerate(ODD) for d in [all_dir if i % 2 else hem_dir]}
    return root, bad, str(moved.resolve())


def test_without_problems_list_the_error_names_every_file(official):
    root, bad, moved = official
    with pytest.raises(BadNamesError) as err:
        read_dataset(root)
    assert isinstance(err.value, IndexError_)
    message = str(err.value)
    assert message.startswith(f"{len(bad) + 1} files under")
    lines = message.splitlines()[1:]
    assert {line.strip() for line in lines if "(" not in line} == bad
    assert [line.strip() for line in lines if "(" in line] == [f"{moved} (name says all, folder says hem)"]
    assert {p["file"] for p in err.value.problems} == bad | {moved}
    copy = pickle.loads(pickle.dumps(err.value))  # e.g. sent from a worker process
    assert str(copy) == message and copy.problems == err.value.problems


def test_with_problems_list_they_are_left_out_and_recorded(official, tiny_synthetic):
    root, bad, moved = official
    problems: list[dict] = []
    index = read_dataset(root, problems=problems)
    reasons = {p["file"]: p["problem"] for p in problems}
    assert set(reasons) == bad | {moved}
    assert reasons[moved] == "name says all, folder says hem"
    assert all("does not follow UID_" in reasons[f] for f in bad)
    assert not set(index["path"]) & set(reasons)
    assert len(index) == len(read_dataset(tiny_synthetic)) - 1  # every other cell is still indexed


def test_loose_layout_too(tmp_path, cnmc_samples):
    root = tmp_path / "loose"
    shutil.copytree(cnmc_samples, root)
    (root / "sub").mkdir()
    shutil.copy(sorted(root.glob("*.bmp"))[0], root / "sub" / "foo.bmp")
    with pytest.raises(BadNamesError, match="foo.bmp"):
        read_dataset(root)
    problems: list[dict] = []
    assert len(read_dataset(root, problems=problems)) == 10
    assert [p["file"] for p in problems] == [str((root / "sub" / "foo.bmp").resolve())]
