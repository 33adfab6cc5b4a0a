"""Text cells of every CSV of a run folder cannot run as spreadsheet formulas, and read back exactly.

Before, only ``predict``'s CSVs were neutralised: a subject id ``=cmd|' /C calc'!A0`` reached
``folds.csv``, ``index.csv``, ``predictions.csv``, ``predictions_vote.csv`` ... as a live formula.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from blastscope.engine.atomic import atomic_write_csv, read_safe_csv, spreadsheet_restore, spreadsheet_safe

HOSTILE = "=cmd|' /C calc'!A0"


def test_round_trip_keeps_text_and_numbers(tmp_path):
    """Invariant: read_safe_csv(atomic_write_csv(frame)) == frame, for any text, including values
    that already start with quotes before a formula character; numbers are never touched."""
    frame = pd.DataFrame({"subject_id": [HOSTILE, "-5", "'=x", "''+y", "'plain", "@a", "H1"],
                          "p": [-0.0, -0.5, 1.0, 0.25, 0.0, -1e-9, 0.5]})
    path = tmp_path / "x.csv"
    atomic_write_csv(path, frame)
    raw = path.read_text()
    assert "'=cmd" in raw and "\n'-5," in raw and "\n'''+y," in raw and "\n'plain," in raw
    assert "\n-0.0\n" not in raw and ",-0.0\n" in raw  # the number column is written as numbers
    back = read_safe_csv(path, keep_default_na=False, dtype={"subject_id": str})
    pd.testing.assert_frame_equal(back, frame)
    assert spreadsheet_restore(spreadsheet_safe(frame)).equals(frame)


def test_run_folder_csvs_are_safe_and_read_back(tmp_path):
    """A real (tiny) cross-validation on subjects named like formulas: every CSV of the run folder
    has the ids neutralised, and aggregation and the reports read them back unchanged."""
    from blastscope.config import resolve_config
    from blastscope.data.readers import read_dataset
    from blastscope.evaluation.aggregate import aggregate_run
    from blastscope.evaluation.cross_validation import run_cv
    from blastscope.reports.run_data import read_run

    rng = np.random.default_rng(0)
    root, rows = tmp_path / "ds", ["file,subject_id"]
    subjects = {"ALL": [HOSTILE, "-5", "+A"], "HEM": ["@B", "H1", "-0.0"]}
    for c, ids in subjects.items():
        (root / c).mkdir(parents=True)
        for s, subject in enumerate(ids):
            for i in range(2):
                name = f"{c}{s}_{i}.png"
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / c / name)
                rows.append(f'{c}/{name},"{subject}"' if "'" in subject or "|" in subject else f"{c}/{name},{subject}")
    (tmp_path / "subjects.csv").write_text("\n".join(rows) + "\n")
    config = resolve_config("sd_net", "quick", ["data.synthetic=null", "data.classes=[ALL,HEM]", "data.positive=ALL",
                                                "data.folds=3", "data.resize=48", "train.epochs=1"])
    run = tmp_path / "run"
    run_cv(config, read_dataset(root, subjects_csv=tmp_path / "subjects.csv"), run)
    aggregate_run(run)
    for name in ("index.csv", "folds.csv", "predictions.csv", "arms/sd_net/fold_1/predictions.csv"):
        raw = (run / name).read_text()
        if "fold_1" not in name:  # a fold's file holds its validation subjects only
            assert "'=cmd|" in raw and "'-5" in raw and "'@B" in raw, name
        assert not any(line.startswith(("=", "+", "@")) or ",=" in line or ",@" in line for line in raw.splitlines()), name
    preds = read_run(run).predictions
    assert set(preds["subject_id"]) == set(subjects["ALL"] + subjects["HEM"])
    assert preds["p_ALL"].dtype == float and (preds["p_ALL"] >= 0).all()
    folds = read_safe_csv(run / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    assert HOSTILE in set(folds["subject_id"]) and "-0.0" in set(folds["subject_id"])
