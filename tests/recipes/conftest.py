"""Fixtures for recipe tests: tiny synthetic C-NMC trees (2 and 3 classes) and a quick-run helper."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from blastscope.config import RunConfig, resolve_config
from blastscope.data.readers import read_dataset
from blastscope.data.synth import SynthConfig, write_synthetic_cnmc
from blastscope.evaluation.aggregate import aggregate_run
from blastscope.evaluation.cross_validation import run_cv

# One epoch of at most two mini-batches on 64 px cells, two folds: seconds per arm.
TINY = ["train.epochs=1", "data.folds=2", "data.resize=64", "train.batch_size=8", "train.max_train_batches=2"]
RUN_FILES = ["config.yaml", "run.json", "index.csv", "folds.csv", "metrics.json", "metrics_table.csv", "predictions.csv"]
FOLD_FILES = ["best.safetensors", "history.csv", "predictions.csv", "fold.json"]


def _tiny_index(root: Path, classes: tuple[str, ...]) -> pd.DataFrame:
    write_synthetic_cnmc(root, SynthConfig(train_subjects=2, validation_subjects=1, test_subjects=1,
                                           cells_per_subject=(3, 4), folds=2, size=200, seed=1, classes=classes))
    return read_dataset(root)


@pytest.fixture(scope="session")
def tiny_cnmc_index(tmp_path_factory) -> pd.DataFrame:
    """Index of a tiny 2-class (all, hem) synthetic C-NMC tree: 2 training subjects per class."""
    return _tiny_index(tmp_path_factory.mktemp("tiny2") / "cnmc", ("all", "hem"))


@pytest.fixture(scope="session")
def tiny_cnmc3_index(tmp_path_factory) -> pd.DataFrame:
    """Index of a tiny 3-class (all, hem, aml) synthetic C-NMC tree."""
    return _tiny_index(tmp_path_factory.mktemp("tiny3") / "cnmc", ("all", "hem", "aml"))


def check_run_folder(out: Path, config: RunConfig, n_folds: int) -> dict:
    """Assert the standard run-folder files exist; return metrics.json."""
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    has_held_out = any(entry["vote"] for entry in metrics["arms"].values())
    assert (out / "predictions_vote.csv").is_file() == has_held_out
    run = json.loads((out / "run.json").read_text())
    assert run["arms"] == [a.name for a in config.arms] and run["n_folds"] == n_folds
    for arm in config.arms:
        for k in range(n_folds):
            for name in FOLD_FILES:
                assert (out / "arms" / arm.name / f"fold_{k + 1}" / name).is_file(), (arm.name, k, name)
    return metrics


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """The ``--set`` overrides that make a quick profile tiny."""
    return list(TINY)


@pytest.fixture
def run_quick() -> Callable[..., tuple[RunConfig, dict]]:
    """``run_quick(recipe, index, out, *overrides)``: the quick profile, made tiny, run and aggregated."""

    def run(recipe: str, index: pd.DataFrame, out: Path, *overrides: str) -> tuple[RunConfig, dict]:
        config = resolve_config(recipe, "quick", TINY + list(overrides))
        run_cv(config, index, out)
        aggregate_run(out)
        return config, check_run_folder(out, config, n_folds=2)

    return run
