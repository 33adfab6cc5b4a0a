"""Auxiliary SVM case: fit on C-NMC-scale features and predict the held-out cells.

Optimised: :class:`blastscope.estimators.svm_head.SpectralSVM` (scikit-learn's ``SVC`` to fit;
prediction from the exported arrays in NumPy, as a saved run does). Reference: ``SVC`` fitted and
predicting directly (libsvm), the released code's classifier. Features: two classes of 100
non-negative spectral-average-like features (means over ReLU maps), C = 10, gamma = 100.
"""
from __future__ import annotations

import time

import numpy as np

from blastscope.bench.config import BenchConfig
from blastscope.bench.result import CaseResult

__all__ = ["run_svm", "svm_features"]


def svm_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centre = np.where(y[:, None] == 1, 0.32, 0.30)
    return np.clip(centre + rng.normal(0, 0.05, (n, d)), 0, None), y


def run_svm(cfg: BenchConfig) -> list[CaseResult]:
    from sklearn.svm import SVC

    from blastscope.estimators.svm_head import SpectralSVM

    x, y = svm_features(cfg.svm_train, cfg.svm_features, 0)
    xt, _ = svm_features(cfg.svm_test, cfg.svm_features, 1)
    t0 = time.perf_counter()
    fitted = SpectralSVM(C=10.0, gamma=100.0).fit(x, y)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = SVC(C=10.0, gamma=100.0).fit(x, y)
    t_ref_fit = time.perf_counter() - t0
    saved = SpectralSVM.from_arrays(fitted.to_arrays())
    t0 = time.perf_counter()
    pred = saved.predict(xt)
    t_pred = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_pred = ref.predict(xt)
    t_ref_pred = time.perf_counter() - t0
    dec_diff = float(np.abs(saved.decision_function(xt) - ref.decision_function(xt)).max())
    same = float((pred == ref_pred).mean())
    size = f"{cfg.svm_train:,} x {cfg.svm_features}"
    return [
        CaseResult("svm_fit", f"Auxiliary RBF-SVM fit on {size} (C=10, gamma=100)", "s", t_fit, t_ref_fit,
                   higher_is_better=False, notes="both are libsvm (scikit-learn SVC); no target",
                   extra={"support_vectors": len(fitted.svc_.support_)}),
        CaseResult("svm_predict", f"Auxiliary SVM predict on {cfg.svm_test:,} cells", "s", t_pred, t_ref_pred,
                   higher_is_better=False,
                   agreement={"max_abs_decision_diff": dec_diff, "tolerance": 1e-6, "same_prediction_share": same,
                              "ok": dec_diff <= 1e-6 and same == 1.0},
                   notes="NumPy RBF from the exported arrays (one matrix product) vs libsvm's predict"),
    ]
