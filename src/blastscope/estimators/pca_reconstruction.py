"""PCA reconstruction and training-fold z-score for Spike-PCA-ResNet.

Noshad & Fallahi (2021), Section 2.2 (PCA paragraph) and Eq. (4): the edge-latency images are
flattened, projected on their leading principal components (500 for C-NMC; ~1200 / "more
than 99% variation" for ALL-IDB) and reconstructed; the reconstruction, still an image, is
z-scored and fed to the ResNet. The authors' released script does ``PCA(500)`` then
``inverse_transform`` and then z-scores.

Deliberate differences from the released script:

* Both steps are fitted on the training fold only and applied unchanged to validation and
  test data. The script z-scored the test set with the test set's own statistics, which leaks
  information and makes the test pipeline differ from the training one.
* ``n_components`` larger than ``min(n_samples, n_features)`` is clamped (with a logged
  warning) instead of failing, so a small fold still runs.
* The fitted state exports to plain arrays (``to_arrays`` / ``from_arrays``) for safetensors
  files; nothing is pickled.

Eq. (4) is ambiguous about what "the mean of that feature vector" is taken over;
:class:`TrainZScore` uses one scalar mean and standard deviation over all training pixels by
default (``per_feature=False``) and per-pixel statistics with ``per_feature=True``.
"""
from __future__ import annotations

import logging
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

__all__ = ["PCAReconstruction", "TrainZScore"]

logger = logging.getLogger(__name__)

_PCA_ATTRS = ("components_", "mean_", "explained_variance_", "explained_variance_ratio_", "singular_values_")


def _flatten(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"X must have a sample axis and at least one feature axis, got shape={X.shape}")
    return X.reshape(X.shape[0], -1)


class PCAReconstruction(TransformerMixin, BaseEstimator):
    """Project on the training fold's principal components and map back to image space.

    Args:
        n_components: an int >= 1 keeps that many components; a float in (0, 1] keeps the fewest
            components whose explained variance ratio exceeds it (1.0 keeps all).
        svd_solver: passed to :class:`sklearn.decomposition.PCA` (a float ``n_components``
            always uses ``"full"``, which sklearn requires).
        random_state: seed for the randomized solver.

    Input ``X`` is ``(n_samples, ...)``: images of any shape are flattened to
    ``(n_samples, n_features)`` for the PCA and ``transform`` returns the reconstruction in the
    input's shape.

    Fitted attributes: ``pca_`` (the sklearn PCA), ``n_components_``,
    ``explained_variance_ratio_total_`` (variance kept, in [0, 1]), ``feature_shape_``,
    ``n_features_in_``.
    """

    def __init__(self, n_components: int | float = 500, svd_solver: str = "auto", random_state: int | None = 0) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, numbers.Real):
            raise ValueError(
                f"n_components must be an int >= 1 or a float in (0, 1], got n_components={n_components!r}"
            )
        if isinstance(n_components, numbers.Integral):
            if n_components < 1:
                raise ValueError(f"n_components must be >= 1, got n_components={n_components}")
        elif not 0.0 < float(n_components) <= 1.0:
            raise ValueError(f"a float n_components must be in (0, 1], got n_components={n_components}")
        self.n_components = n_components
        self.svd_solver = svd_solver
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: object = None) -> PCAReconstruction:
        """Fit on the training fold ``X`` (``(n_samples, ...)``); ``y`` is ignored."""
        X = np.asarray(X)
        flat = _flatten(X)
        n_samples, n_features = flat.shape
        limit = min(n_samples, n_features)
        n_components, solver = self.n_components, self.svd_solver
        if isinstance(n_components, numbers.Integral):
            if n_components > limit:
                logger.warning(
                    "n_components=%d exceeds min(n_samples=%d, n_features=%d); using %d",
                    n_components, n_samples, n_features, limit,
                )
                n_components = limit
            n_components = int(n_components)
        elif float(n_components) == 1.0:
            n_components = limit
        else:
            n_components, solver = float(n_components), "full"
        self.pca_ = PCA(n_components=n_components, svd_solver=solver, random_state=self.random_state).fit(flat)
        self._set_summary(X.shape[1:])
        return self

    def _set_summary(self, feature_shape: tuple[int, ...]) -> None:
        self.n_components_ = int(self.pca_.n_components_)
        self.explained_variance_ratio_total_ = float(np.sum(self.pca_.explained_variance_ratio_))
        self.feature_shape_ = tuple(int(s) for s in feature_shape)
        self.n_features_in_ = int(np.prod(self.feature_shape_))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Reconstruction ``inverse_transform(transform(X))`` with the training fold's components.

        Returns an array of ``X``'s shape (float64, or float32 for float32 input and components).
        """
        if not hasattr(self, "pca_"):
            raise NotFittedError("PCAReconstruction is not fitted; call fit on the training fold first")
        X = np.asarray(X)
        flat = _flatten(X)
        if flat.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {flat.shape[1]} features per sample, the PCA was fitted on {self.n_features_in_}")
        return self.pca_.inverse_transform(self.pca_.transform(flat)).reshape(X.shape)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as plain numeric arrays (e.g. for ``safetensors.numpy.save_file``)."""
        if not hasattr(self, "pca_"):
            raise NotFittedError("PCAReconstruction is not fitted; nothing to export")
        arrays = {name.rstrip("_"): np.ascontiguousarray(getattr(self.pca_, name)) for name in _PCA_ATTRS}
        arrays["noise_variance"] = np.asarray(self.pca_.noise_variance_, dtype=np.float64).reshape(1)
        arrays["n_samples"] = np.asarray([self.pca_.n_samples_], dtype=np.int64)
        arrays["feature_shape"] = np.asarray(self.feature_shape_, dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PCAReconstruction:
        """Rebuild a fitted instance from :meth:`to_arrays` output."""
        missing = [key for key in [*(n.rstrip("_") for n in _PCA_ATTRS), "feature_shape"] if key not in arrays]
        if missing:
            raise ValueError(f"arrays lack fitted PCA entries: missing={missing}")
        components = np.asarray(arrays["components"])
        n_components, n_features = components.shape
        pca = PCA(n_components=n_components, svd_solver="full")
        for name in _PCA_ATTRS:
            setattr(pca, name, np.asarray(arrays[name.rstrip("_")]))
        pca.n_components_ = n_components
        pca.n_features_in_ = n_features
        pca.noise_variance_ = float(np.asarray(arrays.get("noise_variance", [0.0])).reshape(-1)[0])
        pca.n_samples_ = int(np.asarray(arrays.get("n_samples", [0])).reshape(-1)[0])
        feature_shape = tuple(int(s) for s in np.asarray(arrays["feature_shape"]).reshape(-1))
        if int(np.prod(feature_shape)) != n_features:
            raise ValueError(f"feature_shape={feature_shape} does not match {n_features} component features")
        est = cls(n_components=n_components)
        est.pca_ = pca
        est._set_summary(feature_shape)
        return est


class TrainZScore(TransformerMixin, BaseEstimator):
    """Eq. (4) z-score with statistics of the training fold only.

    ``fit`` sets ``mean_`` and ``scale_`` (the standard deviation; 1 where it is 0) from the
    training data; ``transform`` applies exactly those to any split, so a shifted test set is
    not re-centred. ``transform`` before ``fit`` raises ``NotFittedError``.

    Args:
        per_feature: False (default) = one scalar mean/std over all training values;
            True = a mean/std per feature (pixel) over the training samples.
    """

    def __init__(self, per_feature: bool = False) -> None:
        if not isinstance(per_feature, bool):
            raise ValueError(f"per_feature must be a bool, got per_feature={per_feature!r}")
        self.per_feature = per_feature

    def fit(self, X: np.ndarray, y: object = None) -> TrainZScore:
        """Fit on the training fold ``X`` (``(n_samples, ...)``); ``y`` is ignored."""
        flat = _flatten(X).astype(np.float64, copy=False)
        if self.per_feature:
            mean, std = flat.mean(axis=0), flat.std(axis=0)
        else:
            mean, std = np.asarray(flat.mean()), np.asarray(flat.std())
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0)
        self.n_features_in_ = flat.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean_) / scale_`` with the training statistics; same shape as ``X``, float64."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("TrainZScore is not fitted; call fit on the training fold first")
        X = np.asarray(X)
        flat = _flatten(X)
        if flat.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {flat.shape[1]} features per sample, fitted on {self.n_features_in_}")
        return ((flat - self.mean_) / self.scale_).reshape(X.shape)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted statistics as plain arrays."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("TrainZScore is not fitted; nothing to export")
        return {
            "mean": np.atleast_1d(self.mean_),
            "scale": np.atleast_1d(self.scale_),
            "n_features": np.asarray([self.n_features_in_], dtype=np.int64),
            "per_feature": np.asarray([int(self.per_feature)], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TrainZScore:
        """Rebuild a fitted instance from :meth:`to_arrays` output."""
        per_feature = bool(np.asarray(arrays["per_feature"]).reshape(-1)[0])
        est = cls(per_feature=per_feature)
        shape = (-1,) if per_feature else ()
        est.mean_ = np.asarray(arrays["mean"], dtype=np.float64).reshape(shape)
        est.scale_ = np.asarray(arrays["scale"], dtype=np.float64).reshape(shape)
        est.n_features_in_ = int(np.asarray(arrays["n_features"]).reshape(-1)[0])
        return est
