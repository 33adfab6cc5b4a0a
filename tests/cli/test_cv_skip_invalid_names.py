"""``blastscope cv`` on data with files whose names cannot be indexed: listed and refused, or ``--skip-invalid``."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from blastscope.cli import main

ARGS = ["cv", "sd_net", "--profile", "quick", "--set", "train.epochs=1", "--set", "data.resize=64", "--json"]


@pytest.fixture(scope="module")
def misnamed(tiny_synthetic, tmp_path_factory):
    """A bad name, a cell in the wrong class folder, and (valid name) an empty file."""
    root = tmp_path_factory.mktemp("misnamed") / "cnmc"
    shutil.copytree(tiny_synthetic, root)
    all_dir = root / "training_data" / "fold_0" / "all"
    cells = sorted(all_dir.glob("*.bmp"))
    foo = all_dir / "foo.bmp"
    shutil.copy(cells[0], foo)
    wrong = root / "training_data" / "fold_1" / "hem" / cells[1].name
    shutil.move(cells[1], wrong)
    empty = cells[2]
    empty.write_bytes(b"")
    names = {str(foo.resolve()): "does not follow UID_", str(wrong.resolve()): "name says all, folder says hem"}
    return root, names, str(empty.resolve())


def test_without_skip_invalid_every_bad_name_is_listed(misnamed, tmp_path):
    root, names, _ = misnamed
    result = CliRunner().invoke(main, ARGS + ["--data", str(root), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: 2 files under") and "--skip-invalid" in result.output
    for path in names:
        assert path in result.output
    assert not (tmp_path / "run").exists()


def test_skip_invalid_records_bad_names_with_unreadable_files(misnamed, tmp_path):
    root, names, empty = misnamed
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ARGS + ["--data", str(root), "--out", str(run), "--skip-invalid", "--fold", "1"])
    assert result.exit_code == 0, result.output
    skipped = pd.read_csv(run / "skipped.csv")
    reasons = dict(zip(skipped["file"], skipped["reason"]))
    assert set(reasons) == set(names) | {empty}
    for path, why in names.items():
        assert why in reasons[path]
    assert "empty file" in reasons[empty]
    assert json.loads((run / "run.json").read_text())["skipped"] == 3
    assert not set(pd.read_csv(run / "folds.csv")["path"]) & set(reasons)
    assert len(pd.read_csv(run / "arms" / "sd_net" / "fold_1" / "predictions.csv")) > 0
