"""Auxiliary RBF-SVM classifier on spectral-averaged features (the "Aux" of SDCT-AuxNet-theta).

Gehlot, Gupta & Gupta, "SDCT-AuxNet-theta", Medical Image Analysis 2020, sections 3.4.1
(eq. 3: trained only on the training images the CNN classifies correctly) and 4.5 (RBF-kernel
SVM). Released implementation: scikit-learn ``SVC(C=10, gamma=100)`` without probability
outputs, fitted on the 100 spectral-averaged features (one per position of the last 64x10x10
feature maps) of the correctly classified training images. Selecting those images and
extracting the features are the caller's job (engine / layers); this class is the classifier.

Differences from the released code:
- Optional ``standardize`` (z-scoring with training statistics); off by default, as released.
- Models are saved as plain arrays (``to_arrays`` / ``from_arrays``, e.g. into safetensors),
  never pickled; a restored model evaluates the RBF decision function in NumPy.
- For more than two classes ``decision_function`` returns the one-vs-one values
  (n_samples, k(k-1)/2), libsvm's native form, instead of scikit-learn's default
  one-vs-rest transform; ``predict`` is libsvm's one-vs-one vote either way.
- A probability of its own (the released code and the paper have none): ``calibrate`` fits a
  Platt scaling on cells the SVM was NOT trained on, and ``predict_proba`` returns it. Why not
  scikit-learn's ``SVC(probability=True)``: that fits Platt's sigmoid by an internal 5-fold CV
  over the SVM's own training cells (which the CNN got right, eq. 3, so they are not the cells
  the SVM answers), and its probabilities can disagree with ``predict`` (libsvm's intercept
  moves the 0.5 point off the decision boundary). Here the sigmoid has a slope only,
  ``P(classes_[1]) = 1 / (1 + exp(-a f))`` with ``f`` the decision value and ``a >= 0`` fitted
  by maximum likelihood with Platt's smoothed targets ((N+ + 1)/(N+ + 2), 1/(N- + 2)), so
  ``argmax(predict_proba) == predict`` for every cell: the probability belongs to the label.
  For k > 2 classes the same one-slope fit is a softmax over the one-vs-one vote counts
  (ties resolved to the lower class index, as ``predict``), with targets ``(N_c + 1)/(N_c + 2)``
  for the true class and the rest shared equally. The slope is stored as ``platt_a``.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from blastscope.estimators.svm_arrays import _ovo_votes, _rbf_ovo_decision, check_svm_arrays, class_scores, platt_proba

logger = logging.getLogger(__name__)

__all__ = ["SpectralSVM"]


def platt_targets(y: np.ndarray, k: int) -> np.ndarray:
    """Platt's smoothed targets (n_samples, k): ``(N_c + 1) / (N_c + 2)`` on the true class c
    (``N_c`` its count), the rest shared equally; for k = 2 exactly Platt (1999)."""
    counts = np.bincount(y, minlength=k).astype(np.float64)
    hit = (counts[y] + 1.0) / (counts[y] + 2.0)
    t = np.repeat(((1.0 - hit) / (k - 1))[:, None], k, axis=1)
    t[np.arange(len(y)), y] = hit
    return t


def fit_platt_slope(scores: np.ndarray, y: np.ndarray) -> float:
    """Maximum-likelihood slope ``a`` in [e^-12, e^12] of ``softmax(a * scores)`` against Platt's targets.

    ``scores`` (n_samples, k): per-class scores whose argmax is the label; ``y`` (n_samples,) class
    indices. For two classes with scores (0, f) this is a logistic regression on f without intercept.
    """
    k = scores.shape[1]
    t = platt_targets(y, k)

    def nll(log_a: float) -> float:
        return float(-(t * log_softmax(np.exp(log_a) * scores, axis=1)).sum())

    res = minimize_scalar(nll, bounds=(-12.0, 12.0), method="bounded", options={"xatol": 1e-8})
    return float(np.exp(res.x))


class SpectralSVM(ClassifierMixin, BaseEstimator):
    """RBF-kernel SVM head with array export (scikit-learn estimator contract).

    Args:
        C: soft-margin penalty > 0 (paper / released code: 10).
        gamma: RBF width > 0 in ``exp(-gamma ||x - x'||^2)`` (paper / released code: 100).
        standardize: z-score features with the training mean/std before the SVM.

    Fitted attributes: ``svc_`` (the scikit-learn ``SVC``, None after ``from_arrays``),
    ``scaler_`` (``StandardScaler`` or None), ``classes_`` (k,), ``n_features_in_``,
    ``arrays_`` (the exported parameters), and after ``calibrate`` ``platt_a_`` (the slope of
    the Platt scaling; None before).

    Input ``X``: float array (n_samples, n_features), e.g. 100 spectral-averaged features.

    ``__init__`` stores its arguments unchanged (so ``clone``/``get_params`` work) and also
    checks them at once; ``fit`` checks again because ``set_params`` bypasses ``__init__``.
    """

    def __init__(self, C: float = 10.0, gamma: float = 100.0, standardize: bool = False) -> None:
        self.C = C
        self.gamma = gamma
        self.standardize = standardize
        self._check_params()  # fail early; fit checks again since set_params bypasses __init__

    def _check_params(self) -> None:
        for name in ("C", "gamma"):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not (ok and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {name}={value!r}")
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ValueError(f"standardize must be a bool, got standardize={self.standardize}")

    def fit(self, X: np.ndarray, y: np.ndarray) -> SpectralSVM:
        """Fit on features X (n_samples, n_features) and labels y (n_samples,).

        Raises:
            ValueError: if ``y`` holds a single class (message gives the class counts). The
                caller then falls back to the CNN alone (theta = 0 behaviour).
        """
        self._check_params()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"need X (n_samples, n_features) and y (n_samples,), got {X.shape} and {y.shape}")
        values, counts = np.unique(y, return_counts=True)
        if values.size < 2:
            found = {v.item(): int(c) for v, c in zip(values, counts)}
            raise ValueError(f"SpectralSVM needs at least 2 classes to fit, got class counts {found}")
        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
        svc = SVC(C=float(self.C), kernel="rbf", gamma=float(self.gamma), decision_function_shape="ovo")
        self.svc_ = svc.fit(Xs, y)
        self.classes_ = self.svc_.classes_
        self.n_features_in_ = X.shape[1]
        self.arrays_ = self._export()
        self.platt_a_ = None
        logger.debug("SpectralSVM fitted: %d support vectors of %d samples", len(self.svc_.support_), len(y))
        return self

    def _export(self) -> dict[str, np.ndarray]:
        svc = self.svc_
        dual, intercept = svc.dual_coef_, svc.intercept_
        if len(svc.classes_) == 2:  # scikit-learn flips binary signs (positive -> classes_[1]); store libsvm's
            dual, intercept = -dual, -intercept
        a = {
            "support_vectors": np.array(svc.support_vectors_, dtype=np.float64),
            "dual_coef": np.array(dual, dtype=np.float64),
            "intercept": np.array(intercept, dtype=np.float64),
            "n_support": np.array(svc.n_support_, dtype=np.int64),
            "classes": np.array(svc.classes_),
            "gamma": np.array(float(self.gamma)),
            "C": np.array(float(self.C)),
        }
        if self.scaler_ is not None:
            a["scaler_mean"] = np.array(self.scaler_.mean_, dtype=np.float64)
            a["scaler_scale"] = np.array(self.scaler_.scale_, dtype=np.float64)
        return a

    def _class_scores(self, X: np.ndarray) -> np.ndarray:
        """Per-class scores (n_samples, k) whose argmax equals ``predict``: (0, f) for two classes,
        else the one-vs-one vote counts minus ``1e-3 * class index`` (ties -> lower index)."""
        return class_scores(self.decision_function(X), len(self.classes_))

    def calibrate(self, X: np.ndarray, y: np.ndarray) -> SpectralSVM:
        """Fit the Platt scaling (module docstring) on cells the SVM was not trained on.

        Args:
            X: (n_samples, n_features) features; y: (n_samples,) labels from ``classes_``.
        Raises:
            ValueError: no cells, or labels outside ``classes_``.
        """
        X = self._check_X(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or len(y) == 0:
            raise ValueError(f"calibrate needs one label per cell and at least one cell, got X {X.shape} and y {y.shape}")
        unknown = set(y.tolist()) - set(self.classes_.tolist())
        if unknown:
            raise ValueError(f"calibration labels {sorted(unknown)} are not among the SVM's classes {self.classes_.tolist()}")
        idx = np.searchsorted(self.classes_, y)
        self.platt_a_ = fit_platt_slope(self._class_scores(X), idx)
        self.arrays_["platt_a"] = np.array(self.platt_a_)
        logger.debug("SpectralSVM Platt slope %.4g from %d cells", self.platt_a_, len(y))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n_samples, k), columns in ``classes_`` order; their argmax is
        ``predict``. Raises ``ValueError`` before ``calibrate``."""
        check_is_fitted(self, "arrays_")
        if getattr(self, "platt_a_", None) is None:
            raise ValueError("this SVM has no probability: calibrate() it on cells it was not trained on first")
        return platt_proba(self._class_scores(X), self.platt_a_)

    def predict_and_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(predict(X), predict_proba(X))`` from one kernel evaluation: the labels are the argmax of
        the calibrated probabilities, which equals ``predict`` by construction (module docstring)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)], proba

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Parameters as plain arrays (safe to store in safetensors/npz; no pickle).

        Keys: ``support_vectors`` (n_sv, d), ``dual_coef`` (k-1, n_sv), ``intercept``
        (k(k-1)/2,), ``n_support`` (k,), ``classes`` (k,), ``gamma`` and ``C`` (0-d), and
        ``scaler_mean``/``scaler_scale`` (d,) when standardised. Signs follow libsvm (a
        positive decision value votes for the first class of a pair). ``classes`` must be
        numeric to be stored in safetensors. ``platt_a`` (0-d) once calibrated.
        """
        check_is_fitted(self, "arrays_")
        return {key: value.copy() for key, value in self.arrays_.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SpectralSVM:
        """Rebuild from ``to_arrays`` output; predictions run in pure NumPy (``svc_`` is None)."""
        a, slope = check_svm_arrays(arrays)
        obj = cls(C=float(a["C"]), gamma=float(a["gamma"]), standardize="scaler_mean" in a)
        obj.svc_ = None
        obj.scaler_ = None
        obj.classes_ = a["classes"]
        obj.n_features_in_ = a["support_vectors"].shape[1]
        obj.arrays_ = a
        obj.platt_a_ = slope
        return obj

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "arrays_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n_samples, {self.n_features_in_}), got {X.shape}")
        return X

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Decision values: (n_samples,) for two classes (positive -> ``classes_[1]``), else
        the one-vs-one values (n_samples, k(k-1)/2)."""
        X = self._check_X(X)
        if self.svc_ is not None:
            Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
            return self.svc_.decision_function(Xs)
        dec = _rbf_ovo_decision(X, self.arrays_)
        return -dec[:, 0] if len(self.classes_) == 2 else dec

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels (n_samples,) from ``classes_``: libsvm's one-vs-one vote (ties -> lower index)."""
        X = self._check_X(X)
        if self.svc_ is not None:
            Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
            return self.svc_.predict(Xs)
        dec = _rbf_ovo_decision(X, self.arrays_)
        return self.classes_[np.argmax(_ovo_votes(dec, len(self.classes_)), axis=1)]
