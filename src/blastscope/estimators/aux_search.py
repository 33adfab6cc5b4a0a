"""Choosing the auxiliary classifier's settings and theta on training subjects only (``auto``).

The SDCT-AuxNet-theta paper fixes RBF C = 10, gamma = 100 on unstandardised spectral features and
theta = 0.9 (sections 4.5-4.5.1, Table 5), chosen for C-NMC at 350 px. On other data or sizes they
need not carry over. With ``aux: {C: auto, gamma: auto, standardize: auto, theta: auto}``:

- ``C``, ``gamma``, ``standardize``: scikit-learn ``GridSearchCV`` over a small grid, scored by
  balanced accuracy under a subject-level ``StratifiedGroupKFold`` of the SVM's own training cells
  (the fold's fit subjects whose cells the CNN classified correctly, eq. 3). ``gamma`` runs over
  multiples of scikit-learn's "scale" value 1 / (n_features * Var(X)) of the (standardised or raw)
  features, plus the paper's 100, so the grid follows the features' scale. A setting given as a
  number stays fixed.
- ``theta``: the Table 5 sweep (``aux.sweep`` plus 0 and 1) on the fold's inner selection cells
  (training subjects that trained neither the CNN nor the SVM); the theta with the best weighted F1
  is kept, ties going to the smaller theta (the CNN answers more).

Nothing here reads the outer validation fold or a held-out set: the caller passes fit and
selection rows only, and a test records which rows were read.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from blastscope.estimators.theta_rule import theta_sweep

__all__ = ["search_svm", "choose_theta", "C_GRID", "GAMMA_FACTORS"]

C_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
GAMMA_FACTORS: tuple[float, ...] = (0.1, 1.0, 10.0)
PAPER_C, PAPER_GAMMA = 10.0, 100.0  # the paper's fixed settings (section 4.5)


def _scale_gamma(X: np.ndarray, standardize: bool) -> float:
    var = 1.0 if standardize else float(X.var())
    return 1.0 / (X.shape[1] * var) if var > 0 else 1.0


def search_svm(X: np.ndarray, y: np.ndarray, groups: np.ndarray, C: float | str = "auto", gamma: float | str = "auto",
               standardize: bool | str = "auto", n_splits: int = 3, seed: int = 0) -> dict:
    """Grid-search the SVM settings given as "auto" (module docstring).

    Args:
        X: (n, d) spectral features of the SVM's training cells; y: (n,) labels; groups: (n,) subjects.
    Returns:
        ``{"C", "gamma", "standardize", "cv_balanced_accuracy", "n_splits", "grid_size"}`` (the
        chosen settings; ``cv_balanced_accuracy`` None when no search was possible, e.g. fewer than
        two subjects of a class or no cells: the fixed or paper values are returned then, and a
        fixed ``gamma="scale"`` stays "scale" for the caller to resolve).
    """
    X, y, groups = np.asarray(X, dtype=np.float64), np.asarray(y), np.asarray(groups)
    per_class = min(len(set(groups[y == c].tolist())) for c in np.unique(y)) if len(np.unique(y)) > 1 else 0
    k = min(n_splits, per_class)
    if k < 2:  # no subject-level split possible: the fixed values, else the paper's ("scale" stays for the caller)
        return {"C": PAPER_C if C == "auto" else float(C), "gamma": PAPER_GAMMA if gamma == "auto" else gamma,
                "standardize": False if standardize == "auto" else bool(standardize),
                "cv_balanced_accuracy": None, "n_splits": 0, "grid_size": 0}
    stds = [False, True] if standardize == "auto" else [bool(standardize)]
    grid = []
    for std in stds:
        base = _scale_gamma(X, std)
        gammas = [base * f for f in GAMMA_FACTORS] + [PAPER_GAMMA] if gamma == "auto" else [
            base if gamma == "scale" else float(gamma)]
        grid.append({"scale": [StandardScaler() if std else "passthrough"],
                     "svc__C": list(C_GRID) if C == "auto" else [float(C)], "svc__gamma": gammas})
    pipe = Pipeline([("scale", "passthrough"), ("svc", SVC(kernel="rbf"))])
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    search = GridSearchCV(pipe, grid, scoring="balanced_accuracy", cv=cv, error_score=0.0, refit=False)
    search.fit(X, y, groups=groups)
    best = search.best_params_
    size = len(search.cv_results_["params"])
    return {"C": float(best["svc__C"]), "gamma": float(best["svc__gamma"]),
            "standardize": not isinstance(best["scale"], str), "cv_balanced_accuracy": float(search.best_score_),
            "n_splits": int(k), "grid_size": int(size)}


def choose_theta(cnn_proba: np.ndarray, svm_pred: np.ndarray, y: np.ndarray, thetas: Sequence[float]) -> dict:
    """The theta of ``thetas`` (plus 0 and 1) with the best weighted F1 on the given (selection)
    cells; ties to the smaller theta. Returns ``{"theta", "weighted_f1", "sweep"}``."""
    candidates = sorted(set(float(t) for t in thetas) | {0.0, 1.0})
    rows = theta_sweep(cnn_proba, svm_pred, y, thetas=candidates)
    best = max(rows, key=lambda r: (round(r["weighted_f1"], 12), -r["theta"]))
    return {"theta": best["theta"], "weighted_f1": best["weighted_f1"], "sweep": rows}
