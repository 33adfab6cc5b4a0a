"""Per-arm training settings in a real cross-validation run: each arm trains with ``data`` plus its
own ``augment`` / ``augment_minority_only`` / ``balance`` overrides (``RunConfig.arm_data``).

A spy at the edge records what each arm's training actually sees: the transform name the arm's
``build_transform`` call asked for, and every item the trainer's :class:`AugmentedImages` hands
out, compared with the stored (unaugmented) cell it was drawn from.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from blastscope.config import read_config, resolve_config
from blastscope.data.readers import read_dataset
from blastscope.engine import trainer
from blastscope.engine.sampling import AugmentedImages
from blastscope.evaluation import cross_validation as cv

TINY = ["train.epochs=1", "data.folds=2", "data.resize=64", "train.batch_size=8", "train.max_train_batches=2", "data.selection=fold"]  # every training cell trains: the tiny folds are small


class _Record:
    """What one arm's training drew: the dataset's labels, order, mask, and per item (label, changed?)."""

    def __init__(self, desc: str, transform_name: str, balance: str) -> None:
        self.desc, self.transform_name, self.balance = desc, transform_name, balance
        self.labels: np.ndarray | None = None
        self.order: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.items: list[tuple[int, bool]] = []


@pytest.fixture
def training_spy(monkeypatch) -> list[_Record]:
    """Patch ``cv.build_transform``, ``cv.fit`` and the trainer's ``AugmentedImages`` to record per arm."""
    records: list[_Record] = []
    names: list[str] = []
    real_build, real_fit = cv.build_transform, cv.fit

    def build_spy(name, train_images=None):
        names.append(name)
        return real_build(name, train_images)

    def fit_spy(model, *args, **kwargs):
        records.append(_Record(kwargs["desc"], names[-1], kwargs["balance"]))
        return real_fit(model, *args, **kwargs)

    class Recording(AugmentedImages):
        def __init__(self, images, labels, transform=None, seed=0, balance="oversample", augment_mask=None):
            super().__init__(images, labels, transform, seed, balance, augment_mask)
            rec = records[-1]
            rec.labels, rec.order = self.labels.copy(), self.order.copy()
            rec.mask = None if augment_mask is None else np.asarray(augment_mask).copy()

        def __getitem__(self, j):
            image, label = super().__getitem__(j)
            i = int(self.order[j])
            records[-1].items.append((label, not np.array_equal(image.numpy(), np.asarray(self.images[i]))))
            return image, label

    monkeypatch.setattr(cv, "build_transform", build_spy)
    monkeypatch.setattr(cv, "fit", fit_spy)
    monkeypatch.setattr(trainer, "AugmentedImages", Recording)
    return records


def _by_arm(records: list[_Record]) -> dict[str, _Record]:
    return {r.desc.rsplit(" fold ", 1)[0]: r for r in records}


def test_stage3c_aug_arms_train_with_their_own_augmentation(tiny_synthetic, tmp_path, training_spy):
    """LeukoNet "Stage-3C w/ aug" in one run: stage1 (inherits data.augment=sdct) and the fusion arm
    (inherits) train on augmented cells; stage2c (augment: none) on the stored cells, unchanged."""
    config = resolve_config("leukonet_stage3c_aug", "quick", TINY)
    run = tmp_path / "run"
    cv.run_cv(config, read_dataset(tiny_synthetic), run, folds=[0])
    arms = _by_arm(training_spy)
    assert list(arms) == ["stage1", "stage2c", "stage3c"]
    assert {a: r.transform_name for a, r in arms.items()} == {"stage1": "sdct", "stage2c": "none", "stage3c": "sdct"}
    for name, augmented in (("stage1", True), ("stage2c", False), ("stage3c", True)):
        rec = arms[name]
        assert rec.items and rec.mask is None and rec.balance == "none", name
        changed = [c for _, c in rec.items]
        assert any(changed) if augmented else not any(changed), (name, changed)
        assert sorted(rec.order) == list(range(len(rec.labels)))  # balance none: every cell once per epoch
    # the run folder records each arm's setting, and its config.yaml reads back to the same config
    training = json.loads((run / "run.json").read_text())["training"]
    assert {a: t["augment"] for a, t in training.items()} == {"stage1": "sdct", "stage2c": "none", "stage3c": "sdct"}
    saved = read_config(run / "config.yaml")
    assert saved == config and saved.arms[1].augment == "none" and saved.arms[0].augment is None


def test_minority_only_and_oversampling_per_arm(tiny_synthetic, tmp_path, training_spy):
    """An arm with augment=sdct, augment_minority_only and balance=oversample in a run whose data says
    none / false / none: only that arm oversamples (equal class counts per epoch) and augments, and
    only cells of the fold's minority class; the inheriting arm sees every stored cell once, unchanged."""
    arms = ("arms=[{name: plain, model: leukonet_stage1}, {name: normal_aug, model: leukonet_stage1, augment: sdct, "
            "augment_minority_only: true, balance: oversample}]")
    config = resolve_config("leukonet_stage1", "quick", TINY + ["data.augment=none", arms])
    cv.run_cv(config, read_dataset(tiny_synthetic), tmp_path / "run", folds=[0])
    rec = _by_arm(training_spy)
    plain, normal = rec["plain"], rec["normal_aug"]
    assert (plain.transform_name, plain.balance, plain.mask) == ("none", "none", None)
    assert sorted(plain.order) == list(range(len(plain.labels))) and not any(c for _, c in plain.items)

    counts = np.bincount(normal.labels, minlength=2)
    minority = int(np.argmin(counts))
    assert counts[0] != counts[1]  # the tiny data is imbalanced, so "minority" means something here
    assert (normal.transform_name, normal.balance) == ("sdct", "oversample")
    np.testing.assert_array_equal(normal.mask, normal.labels == minority)
    drawn = np.bincount(normal.labels[normal.order], minlength=2)
    assert drawn[0] == drawn[1] == counts.max()  # oversampled up to the majority count
    assert not any(c for label, c in normal.items if label != minority)
    assert any(c for label, c in normal.items if label == minority)


def test_each_arm_trains_at_its_own_learning_rate(tiny_synthetic, tmp_path):
    """``lr`` on an arm reaches that arm's optimizer (history.csv), the others keep train.optimizer.lr,
    and run.json records it."""
    import json

    import pandas as pd

    from blastscope.data.readers import read_dataset
    from blastscope.evaluation.cross_validation import run_cv

    arms = ("arms=[{name: sd_net, model: sd_net}, {name: sdct_net, model: sdct_net, lr: 0.07}]")
    config = resolve_config("sdct_auxnet", "quick", ["train.epochs=1", "data.resize=64", "data.folds=2",
                                                     "train.schedule={name: none}", "train.optimizer.lr=0.02", arms])
    run_cv(config, read_dataset(tiny_synthetic, layout="auto"), tmp_path / "run")
    for arm, lr in (("sd_net", 0.02), ("sdct_net", 0.07)):
        for k in (1, 2):
            history = pd.read_csv(tmp_path / "run" / "arms" / arm / f"fold_{k}" / "history.csv")
            assert history["lr"].tolist() == [lr]
    training = json.loads((tmp_path / "run" / "run.json").read_text())["training"]
    assert training["sdct_net"]["lr"] == 0.07 and "lr" not in training["sd_net"]
