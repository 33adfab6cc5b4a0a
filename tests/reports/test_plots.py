"""Every plot function returns a decodable PNG of the promised layout from plain inputs."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from blastscope.reports import plots

pytestmark = pytest.mark.skipif(not plots.available(), reason="matplotlib (extra 'plots') is not installed")


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.std() > 5
    return image


def test_all_figures_draw():
    rng = np.random.default_rng(0)
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5], "val_loss": [0.7, 0.65, 0.6],
                      "train_accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.5, 0.55, 0.6]})
    _decode(plots.training_curves({"Model1": h, "Model2": h}, "t"))
    roc = {"label": "a", "fpr": np.array([0, 0.5, 1]), "tpr": np.array([0, 0.8, 1]), "auc": 0.65, "low": 0.4, "high": 0.9}
    _decode(plots.roc_curves([roc], "t"))
    wide = _decode(plots.confusion_matrices([("x", [[3, 1], [0, 4]], ["hem", "all"])] * 3, "t"))
    narrow = _decode(plots.confusion_matrices([("x", [[3, 1], [0, 4]], ["hem", "all"])], "t"))
    assert wide.shape[1] > 2 * narrow.shape[1]  # one panel per matrix
    thetas = [0.6, 0.7, 0.8]
    series = {"Model1": {"f1_hem": [0.1, 0.2, 0.3], "balanced_accuracy": [0.5, 0.6, 0.7]},
              "Majority vote": {"f1_hem": [0.2, 0.3, 0.4], "balanced_accuracy": [0.6, 0.6, 0.6]}}
    _decode(plots.theta_sweep(thetas, series, [("f1_hem", "F1"), ("balanced_accuracy", "BAC")], "t"))
    rows = [{"subject_id": f"S{i}", "label": "all" if i % 2 else "hem", "accuracy": i / 10, "cells": 5} for i in range(8)]
    _decode(plots.subject_accuracy(rows, ["hem", "all"], "t"))
    n = 4
    _decode(plots.dct_sparsity(rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), rng.normal(size=(n, 3, 32, 32)),
                               rng.random((n, 3, 32, 32)), ["hem", "hem", "all", "all"],
                               np.sort(rng.random((n, 10)), axis=1), np.geomspace(1e-3, 1, 10), ["hem", "all"], "t"))
    layers = {"C1": (rng.normal(size=(20, 2)), ["hem", "all"] * 10), "C6": (rng.normal(size=(20, 2)), ["hem", "all"] * 10)}
    _decode(plots.feature_projection(layers, {"C1": [0.5, 0.2], "C6": [0.6, 0.1]}, ["hem", "all"], "t"))


def test_subject_accuracy_with_file_path_subjects_keeps_its_bars():
    """Image-level runs name "subjects" by file path: long labels are cut, the layout still applies."""
    import warnings

    rows = [{"subject_id": f"/data/all-smear-taleqani/very_long_folder_name/image_{i:04d}.jpg", "label": "all",
             "accuracy": 1.0 if i % 2 else 0.0, "cells": 1} for i in range(24)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when constrained layout collapses the axes
        image = _decode(plots.subject_accuracy(rows, ["hem", "all"], "t"))
    assert plots._short(rows[0]["subject_id"]).endswith("image_0000.jpg")
    assert len(plots._short(rows[0]["subject_id"])) == 24 and plots._short("S1") == "S1"
    assert image.shape[0] > 200
