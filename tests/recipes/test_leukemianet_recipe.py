"""The leukemianet recipe (LeukemiaNet paper, sections 3-4): paper settings resolve, and the quick
profile runs end to end on 3-class synthetic data and on the real Munich AML sample mapped to 3
classes, with the PCA colour augmentation fitted on each fold's training images only."""
from __future__ import annotations

import numpy as np
import pandas as pd

import blastscope.evaluation.cross_validation as cv
from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset

AML_MAP = "data.class_map={MYO: aml, LYT: normal, MON: monocyte}"
AML_CLASSES = "data.classes=[normal, aml, monocyte]"


def test_paper_settings():
    """Section 4: 227 x 227 input, 30 epochs, learning rate 1e-3; Dataset 2 augmentation; 3 classes."""
    config = resolve_config("leukemianet")
    (arm,) = config.arms
    assert arm.model == "leukemianet" and list(arm.kwargs["input_size"]) == [227, 227] == [config.data.resize] * 2
    assert (config.train.epochs, config.train.optimizer.lr) == (30, 1e-3)
    assert config.data.augment == "leukemianet_pca" and len(config.data.classes) == 3
    assert config.data.fold_mode == "subject" and config.data.synthetic == "quick3"


def test_quick_profile_is_small_and_consistent():
    config = resolve_config("leukemianet", "quick")
    (arm,) = config.arms
    assert config.data.synthetic == "quick3" and config.data.folds <= 3 and config.train.epochs <= 15
    assert config.data.resize <= 160 and list(arm.kwargs["input_size"]) == [config.data.resize] * 2


def test_cpu_profile_is_the_measured_one_and_consistent(tiny_cnmc3_index, tmp_path):
    """The cpu profile (measured on the smear set: README/recipe comment) keeps the paper's model and
    augmentation, balances the classes, and its arm's input size is the cells' size; it runs."""
    from dataclasses import replace

    config = resolve_config("leukemianet", "cpu")
    (arm,) = config.arms
    assert (config.data.resize, config.train.epochs, config.train.batch_size, config.train.optimizer.lr) == (96, 30, 32, 0.005)
    assert config.data.balance == "oversample" and config.data.augment == "leukemianet_pca"
    assert list(arm.kwargs["input_size"]) == [96, 96] and arm.model == "leukemianet"
    short = replace(config, train=replace(config.train, epochs=1))
    cv.run_cv(short, tiny_cnmc3_index, tmp_path / "run", folds=[0])
    assert (tmp_path / "run" / "arms" / "leukemianet" / "fold_1" / "fold.json").exists()


def test_quick_profile_runs_on_three_class_synthetic_data(tiny_cnmc3_index, tiny_overrides, tmp_path, monkeypatch, run_quick):
    """Invariant: the PCA colour augmentation of fold k is fitted on fold k's training images only."""
    fitted: list[int] = []
    real_build = cv.build_transform

    def spy(name, train_images=None):
        transform = real_build(name, train_images)
        pca = transform._items[-1]
        fitted.append(len(train_images))
        # the fitted eigen-decomposition is that of exactly these images' non-black pixels
        pixels = np.asarray(train_images).reshape(-1, 3)
        pixels = pixels[(pixels > 0).any(axis=1)].astype(np.float64)  # AlexNet's 0-255 grey levels
        values = np.linalg.eigvalsh(np.cov(pixels, rowvar=False))[::-1]
        np.testing.assert_allclose(pca.eigenvalues_, values, rtol=1e-6, atol=1e-12)
        return transform

    monkeypatch.setattr(cv, "build_transform", spy)
    out = tmp_path / "run"
    config, metrics = run_quick("leukemianet", tiny_cnmc3_index, out, "data.resize=128")
    from blastscope.evaluation.cross_validation import fold_rows, plan_cv

    plan = plan_cv(config, tiny_cnmc3_index)
    assert fitted == [len(fold_rows(plan, k).fit) for k in range(2)]  # the fold's fit subjects, not its selection ones
    entry = metrics["arms"]["leukemianet"]
    assert metrics["class_names"] == ["hem", "all", "aml"]
    for m in (entry["pooled_oof"], entry["vote"]["validation"]):
        cm = np.asarray(m["confusion_matrix"])
        assert cm.shape == (3, 3) and cm.sum() == m["n_samples"]


def test_quick_profile_runs_on_the_munich_aml_sample(shared, tiny_overrides, tmp_path, run_quick):
    """The real folder-per-class set, 3 classes by class_map, image-level (it has no subject ids)."""
    index = read_dataset(shared("aml-cytomorphology-sample"), class_map={"MYO": "aml", "LYT": "normal", "MON": "monocyte"})
    out = tmp_path / "run"
    _, metrics = run_quick("leukemianet", index, out, "data.resize=128", AML_MAP, AML_CLASSES,
                                "data.grouping=image", "data.fold_mode=image")
    assert metrics["image_level"] and metrics["class_names"] == ["normal", "aml", "monocyte"]
    assert metrics["arms"]["leukemianet"]["pooled_oof"]["n_samples"] == 30
