"""The spike_resnet recipe: paper settings, and the quick profile end to end (subject- and image-level)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import load_file

from blastscope.cli import main
from blastscope.config import resolve_config
from blastscope.data.cache import ImageCache
from blastscope.data.preprocess import Preprocess
from blastscope.data.readers import read_dataset
from blastscope.data.synth import SynthConfig, write_synthetic_cnmc
from blastscope.evaluation.aggregate import aggregate_run
from blastscope.evaluation.cross_validation import run_cv
from blastscope.reports.spike_table import spike_table_rows
from blastscope.transforms.spike_input import SpikeInput

FAST = ["train.epochs=1", "train.max_train_batches=2"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Two OpenMP threads on a shared 2-core machine thrash; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_recipe_holds_the_paper_settings() -> None:
    """Noshad & Fallahi 2021, section 3 / Table 3 and the released script."""
    c = resolve_config("spike_resnet")
    assert (c.data.classes, c.data.positive) == (("hem", "all"), "all")
    assert (c.data.folds, c.data.fold_mode, c.data.grouping) == (4, "subject", "subject")
    assert (c.data.augment, c.data.balance, c.data.canvas, c.data.resize) == ("spike", "oversample", None, 100)
    assert (c.train.epochs, c.train.batch_size) == (10, 32)
    assert (c.train.optimizer.name, c.train.optimizer.lr, c.train.optimizer.weight_decay) == ("adam", 1e-3, 0.0)
    s = c.train.schedule
    assert (s.name, s.factor, s.patience, s.min_lr) == ("plateau", 0.3, 5, 1e-6)
    (arm,) = c.arms
    assert (arm.model, arm.input, arm.input_kwargs) == ("spike_resnet", "spike", {"size": 100, "n_components": 500})
    quick = resolve_config("spike_resnet", "quick")
    assert 3 <= quick.data.folds <= 4 and quick.arms[0].input_kwargs["n_components"] < 500


def test_quick_profile_runs_end_to_end_subject_level(tmp_path: Path) -> None:
    """Tiny synthetic C-NMC -> cv -> aggregate. Invariant: folds are subject-level and each fold's fitted
    input (PCA + z-score) equals a SpikeInput fitted on that fold's training images alone."""
    data = tmp_path / "synthetic"
    write_synthetic_cnmc(data, SynthConfig(train_subjects=3, validation_subjects=1, test_subjects=1,
                                           cells_per_subject=(3, 4), folds=3, size=200, seed=1))
    config = resolve_config("spike_resnet", "quick", FAST)
    run = tmp_path / "run"
    plan = run_cv(config, read_dataset(data), run, cache_dir=tmp_path / "cache")
    metrics = aggregate_run(run)

    run_json = json.loads((run / "run.json").read_text())
    assert run_json["image_level"] is False and metrics["image_level"] is False
    folds = pd.read_csv(run / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    train = folds[folds["fold"] >= 0]
    assert (train.groupby("subject_id")["fold"].nunique() == 1).all()
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["set"]) == {"oof", "validation"}

    k = 0
    stored = load_file(str(run / "arms" / "spike_resnet" / f"fold_{k + 1}" / "input.safetensors"))
    images = ImageCache(tmp_path / "cache").array(plan.index["path"].tolist(), Preprocess(canvas=None, resize=100))
    from blastscope.evaluation.cross_validation import fold_rows

    refit = SpikeInput(**config.arms[0].input_kwargs).fit(np.asarray(images[fold_rows(plan, k).fit]))  # the fit subjects only
    for key, value in refit.to_arrays().items():
        np.testing.assert_array_equal(stored[key], value, err_msg=key)

    op = metrics["arms"]["spike_resnet"]["operating_point"]
    assert set(op["folds"]) == {"0", "1", "2"} and "validation" in op["vote"]
    rows = spike_table_rows(metrics)
    assert {r["decision"] for r in rows} == {"argmax", "operating_point"}


def _folder_dataset(root: Path) -> Path:
    """Two class folders of small RGB images, no subject ids."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 60, size=(48, 48, 3), dtype=np.uint8)
            cv2.circle(image, (24, 24), 8 + 6 * c, (200, 120, 160), -1)
            cv2.imwrite(str(root / name / f"img_{i}.png"), image)
    return root


def _invoke(args: list[str]):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    text = result.output + (result.stderr if getattr(result, "stderr_bytes", None) else "")
    return result.exit_code, text


def test_image_level_run_on_folder_dataset_is_labelled(tmp_path: Path) -> None:
    data, run = _folder_dataset(tmp_path / "data"), tmp_path / "run"
    code, text = _invoke(["cv", "spike_resnet", "--profile", "quick", "--data", str(data), "--grouping", "image",
                          "--set", "data.classes=[a, b]", "--set", "data.positive=b", "--out", str(run),
                          *[a for o in FAST for a in ("--set", o)]])
    assert code == 0, text
    assert json.loads((run / "run.json").read_text())["image_level"] is True
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["image_level"] is True and metrics["fold_mode"] == "image"
    assert "IMAGE-LEVEL" in text and "Table 5 layout" in text


def test_folder_dataset_without_subject_ids_needs_explicit_image_grouping(tmp_path: Path) -> None:
    data = _folder_dataset(tmp_path / "data")
    code, text = _invoke(["cv", "spike_resnet", "--profile", "quick", "--data", str(data), "--set", "data.classes=[a, b]",
                          "--set", "data.positive=b", "--out", str(tmp_path / "run")])
    assert code == 2 and "--grouping image" in text
    assert not (tmp_path / "run" / "run.json").exists()


def test_cpu_profile_is_the_measured_one_and_runs(tmp_path: Path) -> None:
    """The cpu profile (measured on the smear set: recipe comment, README) keeps the paper's model,
    input and optimiser kind, trains on every batch, and runs end to end."""
    c = resolve_config("spike_resnet", "cpu")
    (arm,) = c.arms
    assert (c.train.epochs, c.train.batch_size, c.train.optimizer.name, c.train.optimizer.lr) == (25, 32, "adam", 0.003)
    assert c.train.max_train_batches is None and (arm.model, arm.input) == ("spike_resnet", "spike")
    assert arm.input_kwargs == {"size": 100, "n_components": 64}
    data = tmp_path / "synthetic"
    write_synthetic_cnmc(data, SynthConfig(train_subjects=3, validation_subjects=1, test_subjects=1,
                                           cells_per_subject=(3, 4), folds=3, size=200, seed=1))
    run_cv(resolve_config("spike_resnet", "cpu", FAST), read_dataset(data), tmp_path / "run", folds=[0],
           cache_dir=tmp_path / "cache")
    assert (tmp_path / "run" / "arms" / "spike_resnet" / "fold_1" / "fold.json").exists()
