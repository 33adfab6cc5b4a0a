"""Majority vote over the fold models of a cross-validation.

Gehlot, Gupta & Gupta, "SDCT-AuxNet-theta", Medical Image Analysis 2020, section 4.3,
eqs. 10-11: each of the 7 fold models predicts every test sample and the final label is the
mode of the 7 predictions ("Majority Voting" columns of Tables 4-6). The authors' released
code has no majority vote; this is our implementation of the paper's equation.

Deliberate additions: the paper uses an odd number of models on two classes, so it never
meets a tie. For any other count, ties are broken deterministically: by the highest mean
probability over ALL models (not only those that voted for the tied classes) when
probabilities are given, and otherwise (or if the mean probabilities tie too) by the
smallest class index.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["majority_vote", "vote_frame"]


def majority_vote(
    predictions: np.ndarray, probabilities: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mode of the models' labels per sample (SDCT eq. 11), with deterministic tie-breaking.

    Args:
        predictions: (n_models, n_samples) integer labels >= 0.
        probabilities: optional (n_models, n_samples, n_classes) class probabilities of the
            same models, used only to break ties (and to fix ``n_classes``).

    Returns:
        ``labels`` (n_samples,) int64 voted labels, and ``agreement`` (n_samples,) float64 in
        (0, 1]: the fraction of models whose label equals the vote.
    """
    pred = np.asarray(predictions)
    if pred.ndim != 2 or pred.shape[0] == 0 or pred.shape[1] == 0:
        raise ValueError(f"predictions must be a non-empty (n_models, n_samples) array, got shape {pred.shape}")
    if not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"predictions must hold integer labels, got dtype {pred.dtype}")
    if pred.min() < 0:
        raise ValueError(f"predictions must be >= 0, got value {pred.min()}")
    n_models, n_samples = pred.shape

    mean_proba = None
    if probabilities is not None:
        proba = np.asarray(probabilities, dtype=float)
        if proba.ndim != 3 or proba.shape[:2] != pred.shape:
            raise ValueError(
                f"probabilities must have shape ({n_models}, {n_samples}, n_classes), got {proba.shape}"
            )
        n_classes = proba.shape[2]
        if pred.max() >= n_classes:
            raise ValueError(f"predictions must be < n_classes={n_classes}, got value {pred.max()}")
        mean_proba = proba.mean(axis=0)
    else:
        n_classes = int(pred.max()) + 1

    counts = np.stack([(pred == c).sum(axis=0) for c in range(n_classes)], axis=1)  # (n_samples, k)
    tied = counts == counts.max(axis=1, keepdims=True)
    if mean_proba is None:
        labels = np.argmax(tied, axis=1)  # first True = smallest tied class index
    else:
        labels = np.argmax(np.where(tied, mean_proba, -np.inf), axis=1)
    agreement = counts[np.arange(n_samples), labels] / n_models
    return labels.astype(np.int64), agreement.astype(np.float64)


def vote_frame(rows: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """The vote of every cell of ``rows`` (one set, predicted by every fold model; a fold's
    predictions.csv columns), sorted by path: ``path, set, subject_id, label, y``, the voted label
    ``pred`` (:func:`majority_vote`, ties by mean probability), ``p_*`` the mean of the fold models'
    probabilities, ``cal_p_*`` the mean calibrated probability (what ``predict`` shows) and
    ``out_of_domain`` (most fold models flag the cell) where the folds have them, ``agreement``."""
    folds = sorted(rows["fold"].unique())
    wide = {f: g.set_index("path").sort_index() for f, g in rows.groupby("fold")}
    first = wide[folds[0]]

    def stacked(columns) -> np.ndarray:
        return np.stack([wide[f].loc[first.index, columns].to_numpy() for f in folds])

    p_cols = [f"p_{c}" for c in class_names]
    probs = stacked(p_cols).astype(float)
    labels, agreement = majority_vote(stacked("pred").astype(int), probs)
    out = first[["set", "subject_id", "label", "y"]].reset_index()
    out["pred"] = labels
    out[p_cols] = probs.mean(axis=0)
    cal_cols = [f"cal_p_{c}" for c in class_names]
    if cal_cols[0] in first.columns:
        out[cal_cols] = stacked(cal_cols).astype(float).mean(axis=0)
    if "out_of_domain" in first.columns:
        out["out_of_domain"] = stacked("out_of_domain").astype(bool).mean(axis=0) > 0.5
    out["agreement"] = agreement
    return out
