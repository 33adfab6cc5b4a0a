"""Out-of-domain checks: is a cell (or a case's staining) like the cells the model was trained on?

**Per cell: Mahalanobis distance to class-conditional Gaussians** (Lee et al. 2018) of the model's
own spectral-averaged features (the features the auxiliary SVM reads, Gehlot et al. 2020 section
3.4, for every CNN arm). Class means and one shared covariance are fitted on the fold's fit cells,
after standardising each feature with the fit cells' mean and spread; the covariance is
Ledoit-Wolf shrunk (scikit-learn), since a fold has fewer cells than features. A cell's score is its
smallest squared distance to a class mean. The threshold is the ``quantile`` (default 0.99) of the
scores of the fold's selection cells: training subjects that did not fit the Gaussians, so about
1% of in-domain cells are flagged by construction. Why this score and not the energy or the
softmax confidence: the softmax saturates far from the data (a cell unlike any trained on can
get confidence 1.0, as the AML and PBC samples did), whereas a distance in feature space grows
with the distance from the training cells and needs no outlier data to tune.

**Per case: stain vectors.** The case's Macenko stain matrix (optical-density space) against the
training set's: the angle between each of its two stain vectors and the training reference;
the case is warned about when either angle exceeds the largest angle seen over the training
subjects (the training range) by more than ``margin_deg``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MahalanobisOOD", "stain_angles", "StainRange"]


class MahalanobisOOD:
    """Class-conditional Gaussian distance on features; ``fit`` then ``set_threshold`` then ``flag``."""

    def __init__(self, quantile: float = 0.99) -> None:
        if not 0.5 <= float(quantile) < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), got quantile={quantile}")
        self.quantile = float(quantile)
        self.threshold_: float | None = None

    def fit(self, feats: np.ndarray, y: np.ndarray) -> "MahalanobisOOD":
        from sklearn.covariance import LedoitWolf

        X, y = np.asarray(feats, dtype=np.float64), np.asarray(y).astype(np.int64)
        if X.ndim != 2 or len(X) != len(y) or len(X) < 3:
            raise ValueError(f"need N x P features (N >= 3) with one label each, got {X.shape}")
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ < 1e-8] = 1.0
        Z = (X - self.mean_) / self.scale_
        classes = np.unique(y)
        self.centres_ = np.stack([Z[y == c].mean(axis=0) for c in classes])
        centred = Z - self.centres_[np.searchsorted(classes, y)]
        self.precision_ = LedoitWolf(assume_centered=True).fit(centred).precision_
        return self

    def score(self, feats: np.ndarray) -> np.ndarray:
        """Smallest squared Mahalanobis distance of each row to a class centre (larger = less like training)."""
        Z = (np.asarray(feats, dtype=np.float64) - self.mean_) / self.scale_
        d = Z[:, None, :] - self.centres_[None, :, :]
        return np.einsum("nkp,pq,nkq->nk", d, self.precision_, d).min(axis=1)

    def set_threshold(self, feats: np.ndarray) -> float:
        """Threshold at ``quantile`` of the scores of ``feats`` (in-domain cells not used to fit)."""
        self.threshold_ = float(np.quantile(self.score(feats), self.quantile))
        return self.threshold_

    def flag(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, out_of_domain) of each row."""
        if self.threshold_ is None:
            raise ValueError("set_threshold before flag")
        s = self.score(feats)
        return s, s > self.threshold_

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_, "centres": self.centres_, "precision": self.precision_,
                "threshold": np.array(self.threshold_ if self.threshold_ is not None else np.nan),
                "quantile": np.array(self.quantile)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "MahalanobisOOD":
        out = cls(float(a["quantile"]))
        out.mean_, out.scale_ = np.asarray(a["mean"], np.float64), np.asarray(a["scale"], np.float64)
        out.centres_, out.precision_ = np.asarray(a["centres"], np.float64), np.asarray(a["precision"], np.float64)
        p = out.mean_.shape[0]
        if out.scale_.shape != (p,) or out.centres_.ndim != 2 or out.centres_.shape[1] != p or out.precision_.shape != (p, p):
            raise ValueError(f"out-of-domain arrays disagree in shape: mean {out.mean_.shape}, centres {out.centres_.shape}, "
                             f"precision {out.precision_.shape}")
        t = float(a["threshold"])
        out.threshold_ = None if np.isnan(t) else t
        return out


def stain_angles(matrix: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Angles in degrees between the first two stain vectors (rows) of ``matrix`` and ``reference``."""
    m, r = np.asarray(matrix, np.float64)[:2], np.asarray(reference, np.float64)[:2]
    cos = np.abs((m * r).sum(axis=1)) / (np.linalg.norm(m, axis=1) * np.linalg.norm(r, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


class StainRange:
    """The training set's stain reference and the largest per-subject angles to it (``fit``);
    ``check`` says whether a case's stain vectors lie inside that range."""

    def __init__(self, margin_deg: float = 2.0) -> None:
        self.margin_deg = float(margin_deg)

    def fit(self, images_by_subject: list[np.ndarray]) -> "StainRange":
        from blastscope.ops.stain import macenko_stain_matrix

        pooled = [im for group in images_by_subject for im in group]
        self.reference_ = macenko_stain_matrix(pooled)
        angles = []
        for group in images_by_subject:
            try:
                angles.append(stain_angles(macenko_stain_matrix(list(group)), self.reference_))
            except ValueError:
                continue
        self.max_angles_ = np.max(angles, axis=0) if angles else np.zeros(2)
        return self

    def check(self, images: list[np.ndarray]) -> dict:
        """``{"angles", "max_training_angles", "outside"}`` for a case's cells (``outside`` None when
        no stain could be estimated, e.g. blank images)."""
        from blastscope.ops.stain import macenko_stain_matrix

        try:
            angles = stain_angles(macenko_stain_matrix(list(images)), self.reference_)
        except ValueError as e:
            return {"angles": None, "max_training_angles": self.max_angles_.tolist(), "outside": None, "reason": str(e)}
        outside = bool((angles > self.max_angles_ + self.margin_deg).any())
        return {"angles": angles.tolist(), "max_training_angles": self.max_angles_.tolist(), "outside": outside}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"stain_reference": self.reference_, "stain_max_angles": self.max_angles_,
                "stain_margin_deg": np.array(self.margin_deg)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "StainRange":
        out = cls(float(a["stain_margin_deg"]))
        out.reference_ = np.asarray(a["stain_reference"], np.float64)
        out.max_angles_ = np.asarray(a["stain_max_angles"], np.float64)
        if out.reference_.shape != (3, 3) or out.max_angles_.shape != (2,):
            raise ValueError(f"stain range arrays have shapes {out.reference_.shape}, {out.max_angles_.shape}; expected (3, 3), (2,)")
        return out
