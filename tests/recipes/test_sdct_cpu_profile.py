"""The SDCT-AuxNet-theta cpu profiles (measured on the smear set: recipe comments, README "Learning on
real cells") keep the paper's models and optimiser kind, train SDCT-Net at its own rate, and run."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.data.synth import SynthConfig, write_synthetic_cnmc
from blastscope.evaluation.cross_validation import run_cv


@pytest.mark.parametrize("recipe,aux", [("sdct_auxnet", {"C": 10.0, "gamma": "scale", "standardize": False, "theta": 0.9}),
                                        ("sdct_auxnet_auto", {"C": "auto", "gamma": "auto", "standardize": "auto", "theta": "auto"})])
def test_cpu_profile_is_the_measured_one(recipe, aux):
    c = resolve_config(recipe, "cpu")
    assert (c.data.folds, c.data.resize, c.train.epochs, c.train.batch_size) == (3, 160, 30, 32)
    assert (c.train.optimizer.name, c.train.optimizer.lr, c.train.schedule.milestones) == ("sgd", 0.01, (20,))
    arms = {a.name: a for a in c.arms}
    assert (arms["sd_net"].model, arms["sd_net"].lr) == ("sd_net", None)
    assert (arms["sdct_net"].model, arms["sdct_net"].lr) == ("sdct_net", 0.05)
    got = arms["sdct_auxnet"].aux
    assert {k: getattr(got, k) for k in aux} == aux and arms["sdct_auxnet"].source == "sdct_net"
    paper = resolve_config(recipe, None)
    assert all(a.lr is None for a in paper.arms)  # the paper's recipe trains both networks alike


def test_cpu_profile_runs_with_each_rate(tmp_path: Path):
    data = tmp_path / "synthetic"
    write_synthetic_cnmc(data, SynthConfig(train_subjects=3, validation_subjects=1, test_subjects=1,
                                           cells_per_subject=(3, 4), folds=3, size=200, seed=1))
    config = resolve_config("sdct_auxnet", "cpu", ["train.epochs=1", "data.resize=64"])
    run_cv(config, read_dataset(data), tmp_path / "run", folds=[0], cache_dir=tmp_path / "cache")
    for arm, lr in (("sd_net", 0.01), ("sdct_net", 0.05)):
        assert pd.read_csv(tmp_path / "run" / "arms" / arm / "fold_1" / "history.csv")["lr"].tolist() == [lr]
    assert json.loads((tmp_path / "run" / "arms" / "sdct_auxnet" / "fold_1" / "fold.json").read_text())
