"""A stored auxiliary SVM evaluated from its arrays in NumPy alone (no scikit-learn import).

What a bundle loads for prediction: :class:`SVMArrays` gives the same labels, decision values and
Platt probabilities as :class:`blastscope.estimators.svm_head.SpectralSVM` restored from the same
arrays (tested), without importing scikit-learn, which costs a lab's ``predict`` about a second
of start-up on two cores.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SVMArrays", "check_svm_arrays", "class_scores", "platt_proba"]

REQUIRED = {"support_vectors", "dual_coef", "intercept", "n_support", "classes", "gamma", "C"}


def _rbf_ovo_decision(X: np.ndarray, a: dict[str, np.ndarray]) -> np.ndarray:
    """libsvm's one-vs-one decision values (n_samples, k(k-1)/2) in NumPy.

    Pair p runs over (i, j), i < j, in the order (0,1), (0,2), ..., (1,2), ...; a positive
    value votes for class index i. Support vectors are stored grouped by class; the pair
    (i, j) uses row j-1 of ``dual_coef`` for class i's vectors and row i for class j's.
    """
    if "scaler_mean" in a:
        X = (X - a["scaler_mean"]) / a["scaler_scale"]
    sv = a["support_vectors"]
    sq = (X * X).sum(axis=1)[:, None] + (sv * sv).sum(axis=1)[None, :] - 2.0 * (X @ sv.T)
    kernel = np.exp(-float(a["gamma"]) * np.maximum(sq, 0.0))  # (n_samples, n_sv)
    k = a["classes"].shape[0]
    starts = np.concatenate([[0], np.cumsum(a["n_support"])])
    dual, intercept = a["dual_coef"], a["intercept"]
    out = np.empty((X.shape[0], k * (k - 1) // 2))
    p = 0
    for i in range(k):
        si = slice(starts[i], starts[i + 1])
        for j in range(i + 1, k):
            sj = slice(starts[j], starts[j + 1])
            out[:, p] = kernel[:, si] @ dual[j - 1, si] + kernel[:, sj] @ dual[i, sj] + intercept[p]
            p += 1
    return out


def _ovo_votes(dec: np.ndarray, k: int) -> np.ndarray:
    """Vote counts (n_samples, k) of libsvm's one-vs-one decision values (positive -> class i of pair (i, j))."""
    votes = np.zeros((dec.shape[0], k), dtype=np.int64)
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            wins_i = dec[:, p] > 0
            votes[:, i] += wins_i
            votes[:, j] += ~wins_i
            p += 1
    return votes


def class_scores(dec: np.ndarray, k: int) -> np.ndarray:
    """Per-class scores (n_samples, k) whose argmax is the label, from the decision values: (0, f) for
    two classes, else the one-vs-one vote counts minus ``1e-3 * class index`` (ties -> lower index)."""
    if k == 2:
        return np.stack([np.zeros_like(dec), dec], axis=1)
    return _ovo_votes(dec, k) - 1e-3 * np.arange(k)[None, :]


def platt_proba(scores: np.ndarray, slope: float) -> np.ndarray:
    """``softmax(slope * scores)`` per row: the slope-only Platt probability (for two classes the
    sigmoid of ``slope * f``); its argmax is the argmax of ``scores``."""
    z = slope * scores
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_svm_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float | None]:
    """Validated copies of ``SpectralSVM.to_arrays()`` output and the Platt slope (None if absent)."""
    missing = REQUIRED - set(arrays)
    if missing:
        raise ValueError(f"arrays lacks keys {sorted(missing)}")
    a = {key: np.array(value) for key, value in arrays.items()}
    k, n_sv = a["classes"].shape[0], a["support_vectors"].shape[0]
    if k < 2 or a["dual_coef"].shape != (k - 1, n_sv) or a["intercept"].shape != (k * (k - 1) // 2,):
        raise ValueError(
            f"inconsistent SVM arrays: classes {a['classes'].shape}, support_vectors "
            f"{a['support_vectors'].shape}, dual_coef {a['dual_coef'].shape}, intercept {a['intercept'].shape}"
        )
    if a["n_support"].shape != (k,) or int(a["n_support"].sum()) != n_sv:
        raise ValueError(f"n_support {a['n_support'].tolist()} does not add up to {n_sv} support vectors")
    slope = None
    if "platt_a" in a:
        if a["platt_a"].size != 1:
            raise ValueError(f"platt_a must be one number, got shape {a['platt_a'].shape}")
        slope = float(a["platt_a"].reshape(()))
        if not (np.isfinite(slope) and slope >= 0):
            raise ValueError(f"platt_a must be a finite number >= 0, got {slope}")
    return a, slope


class SVMArrays:
    """A stored SVM: ``predict``, ``decision_function``, ``predict_proba``, ``predict_and_proba``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays_, self.platt_a_ = check_svm_arrays(arrays)
        self.classes_ = self.arrays_["classes"]
        self.n_features_in_ = int(self.arrays_["support_vectors"].shape[1])

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SVMArrays":
        return cls(arrays)

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n_samples, {self.n_features_in_}), got {X.shape}")
        return X

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        dec = _rbf_ovo_decision(self._check_X(X), self.arrays_)
        return -dec[:, 0] if len(self.classes_) == 2 else dec

    def predict(self, X: np.ndarray) -> np.ndarray:
        dec = _rbf_ovo_decision(self._check_X(X), self.arrays_)
        return self.classes_[np.argmax(_ovo_votes(dec, len(self.classes_)), axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.platt_a_ is None:
            raise ValueError("this SVM has no probability: it was stored without its Platt scaling")
        return platt_proba(class_scores(self.decision_function(X), len(self.classes_)), self.platt_a_)

    def predict_and_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)], proba
