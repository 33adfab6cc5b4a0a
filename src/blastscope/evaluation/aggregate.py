"""Turn a run folder's per-fold predictions into metrics (reads files only; never imports torch).

Layouts follow the papers: per fold model and majority vote (Gehlot et al. 2020 Tables 4 and 6),
theta sweep (Table 5, Fig. 10), classifier contributions (Table 8), per-subject accuracy
(Fig. 11); per-class TP/TN/FP/FN with precision/recall/specificity (LeukemiaNet Table 1, Spike
Table 5) and, for two classes, ROC AUC from probabilities with a DeLong 95% CI and Wilson 95% CIs
for sensitivity, specificity and accuracy.

Sets: ``val`` is each fold model on its own validation fold; pooled over folds it is the
out-of-fold estimate (every training cell predicted once, by a model that never saw its subject).
``validation``/``test`` are held-out subjects, predicted by every fold model and by the vote.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from blastscope.engine.atomic import atomic_write_json, atomic_write_text
from blastscope.estimators.theta_rule import contribution_counts, theta_sweep
from blastscope.evaluation.ensemble import majority_vote
from blastscope.evaluation.metrics import classification_report_table
from blastscope.evaluation.statistics import delong_auc_ci, wilson_interval

__all__ = ["summarise", "aggregate_run", "load_predictions", "IncompleteRunError"]

logger = logging.getLogger(__name__)


class IncompleteRunError(RuntimeError):
    """Some folds of the run have not finished yet."""


def _with_ci(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"value": k / n if n else float("nan"), "low": low, "high": high, "k": int(k), "n": int(n)}


def summarise(frame: pd.DataFrame, class_names: list[str], positive: str) -> dict:
    """Metrics of one set of predictions (columns ``y``, ``pred``, ``p_<class>``)."""
    y, pred = frame["y"].to_numpy(int), frame["pred"].to_numpy(int)
    table = classification_report_table(y, pred, class_names)
    n = len(y)
    table["accuracy_ci"] = _with_ci(int((y == pred).sum()), n)
    if len(class_names) == 2:
        pos = class_names.index(positive)
        table["positive"] = positive
        is_pos = y == pos
        table["sensitivity_ci"] = _with_ci(int(((pred == pos) & is_pos).sum()), int(is_pos.sum()))
        table["specificity_ci"] = _with_ci(int(((pred != pos) & ~is_pos).sum()), int((~is_pos).sum()))
        scores = frame[f"p_{positive}"].to_numpy(float)
        if is_pos.any() and (~is_pos).any():
            table["auc"] = delong_auc_ci(is_pos.astype(int), scores)
        else:
            table["auc"] = None
    return table


def load_predictions(run_dir: Path) -> pd.DataFrame:
    files = sorted(Path(run_dir).glob("arms/*/fold_*/predictions.csv"))
    if not files:
        raise IncompleteRunError(f"{run_dir}: no finished folds (arms/*/fold_*/predictions.csv)")
    return pd.concat([pd.read_csv(f, keep_default_na=False, dtype={"subject_id": str, "label": str}) for f in files], ignore_index=True)


def _vote(frame: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Majority vote over fold models per cell (eq. 11); ties broken by mean probability."""
    folds = sorted(frame["fold"].unique())
    wide = {f: g.set_index("path").sort_index() for f, g in frame.groupby("fold")}
    first = wide[folds[0]]
    preds = np.stack([wide[f].loc[first.index, "pred"].to_numpy(int) for f in folds])
    probs = np.stack([wide[f].loc[first.index, [f"p_{c}" for c in class_names]].to_numpy(float) for f in folds])
    labels, agreement = majority_vote(preds, probs)
    out = first[["set", "subject_id", "label", "y"]].reset_index()
    out["pred"] = labels
    mean = probs.mean(0)
    for i, c in enumerate(class_names):
        out[f"p_{c}"] = mean[:, i]
    out["agreement"] = agreement
    return out


def _per_subject(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for subject, g in frame.groupby("subject_id"):
        correct = int((g["y"] == g["pred"]).sum())
        rows.append({"subject_id": subject, "label": g["label"].iloc[0], "cells": len(g), "correct": correct,
                     "accuracy": correct / len(g), "error_rate": 1 - correct / len(g)})
    return rows


def aggregate_run(run_dir: Path, require_complete: bool = True) -> dict:
    """Compute ``metrics.json`` (and CSV tables) for a run folder; returns the metrics."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    classes, positive = run["class_names"], run["positive"]
    preds = load_predictions(run_dir)
    n_folds = run["n_folds"]
    missing = [(a, k) for a in run["arms"] for k in range(n_folds) if not (run_dir / "arms" / a / f"fold_{k}" / "fold.json").exists()]
    if missing and require_complete:
        shown = ", ".join(f"{a} fold {k + 1}" for a, k in missing[:6])
        raise IncompleteRunError(f"{run_dir}: {len(missing)} arm folds are not finished ({shown}); run them, then aggregate")
    metrics: dict = {"recipe": run["recipe"], "class_names": classes, "positive": positive, "grouping": run["grouping"],
                     "fold_mode": run["fold_mode"], "image_level": run["image_level"], "n_folds": n_folds, "arms": {}}
    votes, rows = [], []
    for arm in run["arms"]:
        a = preds[preds["arm"] == arm]
        if a.empty:
            continue
        entry: dict = {"folds": {}, "vote": {}, "pooled_val": None, "per_subject": {}, "theta_sweep": {}, "contributions": {}}
        for k, g in a.groupby("fold"):
            info = json.loads((run_dir / "arms" / arm / f"fold_{k}" / "fold.json").read_text())
            entry["folds"][str(k)] = {"info": info, **{s: summarise(gs, classes, positive) for s, gs in g.groupby("set")}}
        val = a[a["set"] == "val"]
        entry["pooled_val"] = summarise(val, classes, positive)
        entry["per_subject"]["val"] = _per_subject(val)
        for s, gs in a[a["set"] != "val"].groupby("set"):
            voted = _vote(gs, classes)
            voted.insert(0, "arm", arm)
            votes.append(voted)
            entry["vote"][s] = summarise(voted, classes, positive)
            entry["per_subject"][s] = _per_subject(voted)
        entry.update(_aux_tables(a, classes))
        metrics["arms"][arm] = entry
        rows += _flat_rows(arm, entry)
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_text(run_dir / "metrics_table.csv", pd.DataFrame(rows).to_csv(index=False))
    if votes:
        atomic_write_text(run_dir / "predictions_vote.csv", pd.concat(votes, ignore_index=True).to_csv(index=False))
    atomic_write_text(run_dir / "predictions.csv", preds.to_csv(index=False))
    return metrics


def _aux_tables(a: pd.DataFrame, classes: list[str]) -> dict:
    """Theta sweep (Table 5) and classifier contributions (Table 8) of an auxiliary-SVM arm."""
    if "svm_pred" not in a.columns or pd.to_numeric(a["svm_pred"], errors="coerce").isna().all():
        return {}
    out: dict = {"theta_sweep": {}, "contributions": {}}
    cols = [f"p_{c}" for c in classes]
    for s, gs in a.groupby("set"):
        sweep = {}
        for k, g in gs.groupby("fold"):
            sweep[str(k)] = theta_sweep(g[cols].to_numpy(float), g["svm_pred"].to_numpy(int), g["y"].to_numpy(int), class_names=classes)
            correct = (g["pred"] == g["y"]).to_numpy()
            out["contributions"].setdefault(s, {})[str(k)] = contribution_counts(g["answered_by"].to_numpy(), correct)
        out["theta_sweep"][s] = sweep
    return out


def _flat_rows(arm: str, entry: dict) -> list[dict]:
    rows = []
    for k, f in entry["folds"].items():
        for s, m in f.items():
            if s != "info":
                rows.append(_row(arm, f"model{int(k) + 1}", s, m))
    rows.append(_row(arm, "pooled", "val", entry["pooled_val"]))
    for s, m in entry["vote"].items():
        rows.append(_row(arm, "majority_vote", s, m))
    return rows


def _row(arm: str, model: str, s: str, m: dict) -> dict:
    row = {"arm": arm, "model": model, "set": s, "n": m["n_samples"], "accuracy": m["accuracy"],
           "balanced_accuracy": m["balanced_accuracy"], "weighted_f1": m["weighted_f1"], "macro_f1": m["macro_f1"]}
    for name, pc in m["per_class"].items():
        row[f"f1_{name}"] = pc["f1"]
    if m.get("auc"):
        row.update(auc=m["auc"]["auc"], auc_low=m["auc"]["low"], auc_high=m["auc"]["high"])
    return row
