"""Turn a run folder's per-fold predictions into metrics (reads files only; never imports torch).

Layouts follow the papers: per fold model and majority vote (Gehlot et al. 2020 Tables 4 and 6),
theta sweep (Table 5, Fig. 10), classifier contributions (Table 8), per-subject accuracy
(Fig. 11); per-class TP/TN/FP/FN with precision/recall/specificity (LeukemiaNet Table 1, Spike
Table 5) and, for two classes, ROC AUC from probabilities with a DeLong 95% CI and Wilson 95% CIs
for sensitivity, specificity and accuracy.

Sets: ``oof`` is each fold model on its own validation fold; pooled over folds it is the
out-of-fold estimate (every training cell predicted once, by a model that never saw its subject).
``validation``/``test`` are held-out subjects, predicted by every fold model and by the vote.

Every set also gets, for every class one-vs-rest (any number of classes), Wilson 95% CIs of
sensitivity and specificity and the DeLong AUC of ``p_<class>`` (``per_class_ci``; for more than
two classes their mean is ``macro_auc``, scikit-learn's one-vs-rest macro AUC).

Selection (``run.json`` ``selection``, from ``data.selection``): with ``inner`` (the default) every
fold model also predicted its inner selection cells (training subjects that chose its best epoch;
``set == "select"`` in the fold's predictions.csv). Those rows are never scored; they choose the
operating point below, so ``oof`` is scored untouched. With ``fold`` (the papers' protocol) the
validation fold chooses, and the tables call its scores "selection fold (optimistic)".

Auxiliary-SVM arms: ``p_<class>`` is the probability of the classifier that answered the cell (the
CNN's softmax, or the SVM's Platt probability, :meth:`SpectralSVM.predict_proba`), so AUCs, the
operating point, the vote's tie-break and per-subject calls use the arm's own score; ``cnn_p_`` and
``svm_p_`` keep both, and the theta sweeps (Table 5 with its majority-vote column, Table 6's
theta = 0 / recipe / 1 rows) recombine them.

High-sensitivity operating point (Noshad & Fallahi 2021, section 2.4 and Table 5; the paper does not
say how or where its cutoff was chosen): the positive class against the rest, ``p_<positive> >= t``.
Per fold, ``t`` is the largest threshold reaching ``sensitivity_target`` on that fold model's
selection predictions (``select`` rows, or ``oof`` under the papers' protocol;
:func:`~blastscope.evaluation.operating_point.threshold_for_sensitivity`) and is applied unchanged to
that model's validation-fold and held-out predictions. With an inner selection the vote's threshold
is chosen on the pooled ``select`` predictions of all fold models (single-model probabilities: each
training-subject cell is predicted only by the models that did not train on it). The majority vote has no probability of its
own, so the vote's operating point thresholds the MEAN fold-model probability at one threshold chosen
on the pooled out-of-fold ``oof`` predictions (choice: it uses every training cell once, each predicted
by a model that never trained on it, instead of an average of per-fold thresholds chosen on a quarter
of the data each; the mean of the fold thresholds is recorded beside it). On ``oof`` itself the
threshold is fitted on the same predictions, so the target sensitivity is met by construction there.
With more than two classes the operating point is binary: ``<positive>`` against ``not <positive>``.

``positive`` (run.json, from ``data.positive``) may name a SET of classes: the binary question is
then "any of them" against the rest, scored by the sum of their probabilities, named
``positive (<a>, <b>)`` against ``negative (<others>)``
(:mod:`blastscope.evaluation.operating_point`); AUC with its DeLong CI, thresholds, sensitivity
and specificity of the operating point use that score and those names. ``metrics.json`` then
records ``positive`` as the list (a single class stays a string, the format is unchanged). The
per-class tables stay per class.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from blastscope.engine.atomic import atomic_write_csv, atomic_write_json, read_safe_csv
from blastscope.estimators.theta_rule import contribution_counts, theta_sweep
from blastscope.evaluation.ensemble import majority_vote, vote_frame
from blastscope.evaluation.metrics import classification_report_table
from blastscope.evaluation.operating_point import (
    apply_threshold,
    binary_names,
    binary_positive,
    is_positive,
    normalize_positive,
    positive_score,
    threshold_for_sensitivity,
)
from blastscope.evaluation.statistics import delong_auc_ci, wilson_interval
from blastscope.evaluation.trust import CALIB, arm_trust
from blastscope.run_layout import fold_dir

__all__ = ["summarise", "aggregate_run", "load_predictions", "IncompleteRunError"]

logger = logging.getLogger(__name__)
SELECT = "select"


class IncompleteRunError(RuntimeError):
    """Some folds of the run have not finished yet."""


def _with_ci(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"value": k / n if n else float("nan"), "low": low, "high": high, "k": int(k), "n": int(n)}


def summarise(frame: pd.DataFrame, class_names: list[str], positive: str | list[str]) -> dict:
    """Metrics of one set of predictions (columns ``y``, ``pred``, ``p_<class>``).

    ``positive`` (a class name, or a list of names) is used only for two classes, where it sets
    which class sensitivity, specificity and the AUC are of."""
    y, pred = frame["y"].to_numpy(int), frame["pred"].to_numpy(int)
    table = classification_report_table(y, pred, class_names)
    n = len(y)
    table["accuracy_ci"] = _with_ci(int((y == pred).sum()), n)
    if len(class_names) == 2:
        positive = binary_positive(class_names, positive)
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
    table["per_class_ci"] = _per_class_ci(y, pred, frame, class_names)
    if len(class_names) > 2:
        aucs = [c["auc"]["auc"] for c in table["per_class_ci"].values() if c["auc"]]
        table["macro_auc"] = float(np.mean(aucs)) if len(aucs) == len(class_names) else None
    return table


def _per_class_ci(y: np.ndarray, pred: np.ndarray, frame: pd.DataFrame, class_names: list[str]) -> dict:
    """Per class, one-vs-rest: Wilson CIs of sensitivity and specificity, DeLong AUC of ``p_<class>`` (None if undefined)."""
    out = {}
    for i, name in enumerate(class_names):
        member, hit = y == i, pred == i
        auc = None
        if member.any() and (~member).any() and f"p_{name}" in frame:
            auc = delong_auc_ci(member.astype(int), frame[f"p_{name}"].to_numpy(float))
        out[name] = {"sensitivity": _with_ci(int((hit & member).sum()), int(member.sum())),
                     "specificity": _with_ci(int((~hit & ~member).sum()), int((~member).sum())), "auc": auc}
    return out


def _binary_view(frame: pd.DataFrame, classes: list[str], positive: str | list[str], threshold: float) -> pd.DataFrame:
    """``frame`` decided by ``score >= threshold``, the score being ``p_<positive>`` or, for a set of
    positive classes, the sum of their ``p_`` columns: y/pred/p columns over :func:`binary_names`."""
    names, pos_name = binary_names(classes, positive), binary_positive(classes, positive)
    score = positive_score(frame, classes, positive)
    is_pos, called = is_positive(frame["y"].to_numpy(int), classes, positive), apply_threshold(score, threshold) == 1
    pos_id = names.index(pos_name)
    view = pd.DataFrame({"y": np.where(is_pos, pos_id, 1 - pos_id), "pred": np.where(called, pos_id, 1 - pos_id)})
    view[f"p_{pos_name}"] = score
    view[f"p_{names[1 - pos_id]}"] = 1.0 - score
    return view


def _threshold(frame: pd.DataFrame, classes: list[str], positive: str | list[str], target: float) -> float | None:
    is_pos = is_positive(frame["y"].to_numpy(int), classes, positive)
    if not is_pos.any():
        return None
    return threshold_for_sensitivity(is_pos.astype(int), positive_score(frame, classes, positive), target)


def _operating_point(a: pd.DataFrame, voted: dict[str, pd.DataFrame], classes: list[str], positive: str | list[str],
                     target: float, select: pd.DataFrame | None = None) -> dict:
    """Thresholds chosen on selection predictions, applied unchanged to scored ones (module docstring).

    ``select``: the fold models' predictions of their inner selection cells (``set == "select"``,
    training subjects); None under the papers' protocol, where the validation fold chooses."""
    names, pos_name = binary_names(classes, positive), binary_positive(classes, positive)
    out: dict = {"target_sensitivity": target, "positive": positive, "class_names": names, "folds": {},
                 "pooled_oof": None, "vote": {}, "chosen_on": "select" if select is not None else "oof"}
    pooled = []
    for k, g in a.groupby("fold"):
        chooser = g[g["set"] == "oof"] if select is None else select[select["fold"] == k]
        t = _threshold(chooser, classes, positive, target)
        entry: dict = {"threshold": t}
        if t is not None:
            for s, gs in g.groupby("set"):
                view = _binary_view(gs, classes, positive, t)
                entry[s] = summarise(view, names, pos_name)
                if s == "oof":
                    pooled.append(view)
        out["folds"][str(k)] = entry
    if pooled:
        out["pooled_oof"] = summarise(pd.concat(pooled, ignore_index=True), names, pos_name)
    fold_thresholds = [f["threshold"] for f in out["folds"].values() if f["threshold"] is not None]
    out["mean_fold_threshold"] = float(np.mean(fold_thresholds)) if fold_thresholds else None
    t_vote = _threshold(a[a["set"] == "oof"] if select is None else select, classes, positive, target)
    out["vote_threshold"] = t_vote
    if t_vote is not None:
        for s, v in voted.items():
            out["vote"][s] = summarise(_binary_view(v, classes, positive, t_vote), names, pos_name)
    return out


def load_predictions(run_dir: Path) -> pd.DataFrame:
    files = sorted(Path(run_dir).glob("arms/*/fold_*/predictions.csv"))
    if not files:
        raise IncompleteRunError(f"{run_dir}: no finished folds (arms/*/fold_*/predictions.csv)")
    frame = pd.concat([read_safe_csv(f, keep_default_na=False, dtype={"subject_id": str, "label": str}) for f in files], ignore_index=True)
    if "svm_pred" in frame.columns:  # only auxiliary-SVM arms have it; keep it integer with gaps
        frame["svm_pred"] = pd.to_numeric(frame["svm_pred"], errors="coerce").astype("Int64")
    return frame


def _scored_sets(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that are scored: everything but the inner selection cells (``set == "select"``) and the
    conformal calibration cells (``set == "calib"``, ``trust.calibration``)."""
    return frame[~frame["set"].isin((SELECT, CALIB))]


def _collapsed(a: pd.DataFrame) -> list[int]:
    """Fold models (0-based) that predicted one class for every scored cell although the cells hold
    several classes: a model collapsed to one class (e.g. too few epochs, a learning rate too high)."""
    out = []
    for k, g in a.groupby("fold"):
        if g["y"].nunique() > 1 and g["pred"].nunique() == 1:
            out.append(int(k))
    return out


def _per_subject(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for subject, g in frame.groupby("subject_id"):
        correct = int((g["y"] == g["pred"]).sum())
        rows.append({"subject_id": subject, "label": g["label"].iloc[0], "cells": len(g), "correct": correct,
                     "accuracy": correct / len(g), "error_rate": 1 - correct / len(g)})
    return rows


def aggregate_run(run_dir: Path, require_complete: bool = True, sensitivity_target: float = 0.95,
                  alpha: float | None = None) -> dict:
    """Compute ``metrics.json`` (and CSV tables) for a run folder; returns the metrics.

    ``sensitivity_target``: the sensitivity the high-sensitivity operating point must reach on
    validation predictions (module docstring). ``alpha``: the conformal error rate of the trust
    tables (:mod:`blastscope.evaluation.trust`); default the recipe's ``trust.alpha``.
    """
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    classes = run["class_names"]
    positive = normalize_positive(classes, run["positive"])
    all_preds = load_predictions(run_dir)
    preds, select_preds = _scored_sets(all_preds), all_preds[all_preds["set"] == SELECT]
    n_folds = run["n_folds"]
    missing = [(a, k) for a in run["arms"] for k in range(n_folds) if not (fold_dir(run_dir, a, k) / "fold.json").exists()]
    if missing and require_complete:
        shown = ", ".join(f"{a} fold {k + 1}" for a, k in missing[:6])
        raise IncompleteRunError(f"{run_dir}: {len(missing)} arm folds are not finished ({shown}); run them, then aggregate")
    metrics: dict = {"recipe": run["recipe"], "class_names": classes, "positive": positive, "grouping": run["grouping"],
                     "fold_mode": run["fold_mode"], "image_level": run["image_level"], "n_folds": n_folds,
                     "skipped": int(run.get("skipped", 0)), "selection": run.get("selection", "fold"), "arms": {}}
    votes, rows = [], []
    for arm in run["arms"]:
        a = preds[preds["arm"] == arm]
        if a.empty:
            continue
        entry: dict = {"folds": {}, "vote": {}, "pooled_oof": None, "per_subject": {}, "theta_sweep": {}, "contributions": {}}
        for k, g in a.groupby("fold"):
            info = json.loads((fold_dir(run_dir, arm, k) / "fold.json").read_text())
            entry["folds"][str(k)] = {"info": info, **{s: summarise(gs, classes, positive) for s, gs in g.groupby("set")}}
        val = a[a["set"] == "oof"]
        entry["svm_saw_scored_fold"] = any(f["info"].get("svm_saw_scored_fold") for f in entry["folds"].values())
        entry["collapsed"] = _collapsed(a)
        if entry["collapsed"]:
            logger.warning("%s: fold model(s) %s predicted one class for every cell they scored (collapsed)", arm,
                           ", ".join(f"Model{k + 1}" for k in entry["collapsed"]))
        entry["pooled_oof"] = summarise(val, classes, positive)
        entry["per_subject"]["oof"] = _per_subject(val)
        voted_sets = {}
        for s, gs in a[a["set"] != "oof"].groupby("set"):  # held-out sets (select rows are not in ``a``)
            voted = vote_frame(gs, classes)
            voted.insert(0, "arm", arm)
            votes.append(voted)
            voted_sets[s] = voted
            entry["vote"][s] = summarise(voted, classes, positive)
            entry["per_subject"][s] = _per_subject(voted)
        sel = select_preds[select_preds["arm"] == arm]
        entry["operating_point"] = _operating_point(a, voted_sets, classes, positive, sensitivity_target,
                                                    sel if len(sel) else None)
        infos = {int(k): f["info"] for k, f in entry["folds"].items()}
        entry.update(_aux_tables(a, classes, infos))
        trust_cfg = run.get("trust") or {}
        entry["trust"] = arm_trust(all_preds[all_preds["arm"] == arm], classes, positive, infos,
                                   alpha=alpha if alpha is not None else trust_cfg.get("alpha", 0.05),
                                   patient_threshold=trust_cfg.get("patient_threshold", "auto"))
        metrics["arms"][arm] = entry
        rows += _flat_rows(arm, entry)
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_csv(run_dir / "metrics_table.csv", pd.DataFrame(rows))
    if votes:
        atomic_write_csv(run_dir / "predictions_vote.csv", pd.concat(votes, ignore_index=True))
    atomic_write_csv(run_dir / "predictions.csv", preds)
    return metrics


def _cnn_and_svm(g: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CNN probabilities, SVM labels, SVM probabilities) of one fold's rows; where the fold has no
    SVM (``aux_fallback``) the "SVM" is the CNN itself, so every theta gives the CNN's answer."""
    cnn_cols = [f"cnn_p_{c}" for c in classes] if f"cnn_p_{classes[0]}" in g else [f"p_{c}" for c in classes]
    cnn = g[cnn_cols].to_numpy(float)
    cnn = cnn / cnn.sum(axis=1, keepdims=True)
    svm = g["svm_pred"]
    if svm.isna().any():
        return cnn, cnn.argmax(1).astype(np.int64), cnn
    svm_cols = [f"svm_p_{c}" for c in classes]
    svm_p = g[svm_cols].to_numpy(float) if svm_cols[0] in g else np.eye(len(classes))[svm.to_numpy(int)]
    return cnn, svm.to_numpy(int).astype(np.int64), svm_p


def _vote_sweep(gs: pd.DataFrame, classes: list[str], thetas: list[float | dict]) -> list[dict] | None:
    """Majority vote of the fold models at each theta (SDCT eqs. 4-5, then eq. 11; ties by the mean
    probability of whichever classifier answered), in :func:`theta_sweep`'s row layout."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from blastscope.estimators.theta_rule import theta_combine

    wide = {f: g.set_index("path").sort_index() for f, g in gs.groupby("fold")}
    index = next(iter(wide.values())).index
    if any(not w.index.equals(index) for w in wide.values()):
        return None
    parts = [(f, *_cnn_and_svm(w, classes)) for f, w in wide.items()]
    y = next(iter(wide.values()))["y"].to_numpy(int)
    labels = list(range(len(classes)))
    rows = []
    for theta in thetas:  # a dict maps each fold to its own theta (chosen per fold with aux.theta: auto)
        preds, probs, shares = [], [], []
        for f, cnn, svm_pred, svm_p in parts:
            pred, source = theta_combine(cnn, svm_pred, theta[f] if isinstance(theta, dict) else theta)
            preds.append(pred)
            probs.append(np.where((source == "svm")[:, None], svm_p, cnn))
            shares.append(source == "svm")
        vote, _ = majority_vote(np.stack(preds), np.stack(probs))
        f1 = f1_score(y, vote, labels=labels, average=None, zero_division=0.0)
        shown = float(np.mean(list(theta.values()))) if isinstance(theta, dict) else float(theta)
        row = {"theta": shown, "weighted_f1": float(f1_score(y, vote, labels=labels, average="weighted", zero_division=0.0)),
               "balanced_accuracy": float(balanced_accuracy_score(y, vote))}
        row.update({f"f1_{c}": float(f1[i]) for i, c in enumerate(classes)})
        row["svm_share"] = float(np.mean(shares))
        rows.append(row)
    return rows


def _guard_entry(g: pd.DataFrame, classes: list[str]) -> dict:
    y, pred = g["y"].to_numpy(int), g["pred"].to_numpy(int)
    cnn, _, _ = _cnn_and_svm(g, classes)
    by_svm = (g["answered_by"] == "svm").to_numpy()
    cnn_pred = cnn.argmax(1)
    out = {"cnn_kept": _with_ci(int((pred[~by_svm] == y[~by_svm]).sum()), int((~by_svm).sum())),
           "svm_answered": _with_ci(int((pred[by_svm] == y[by_svm]).sum()), int(by_svm.sum())),
           "cnn_on_svm_cells": _with_ci(int((cnn_pred[by_svm] == y[by_svm]).sum()), int(by_svm.sum()))}
    gain = out["svm_answered"]["k"] - out["cnn_on_svm_cells"]["k"]
    out["svm_gain_cells"] = int(gain)  # > 0: the SVM got more of its cells right than the CNN would have
    out["verdict"] = "no cell answered by the SVM" if not by_svm.any() else (
        "the SVM helped" if gain > 0 else "the SVM hurt" if gain < 0 else "no difference")
    return out


def _svm_guard(gs: pd.DataFrame, classes: list[str]) -> dict:
    """Did the auxiliary SVM help? Per fold model and pooled over them: the accuracy (Wilson CI) of
    the CNN on the cells it kept, of the SVM on the cells it answered, and of the CNN on those
    same cells (what theta = 0 would have given there)."""
    out = {str(k): _guard_entry(g, classes) for k, g in gs.groupby("fold")}
    out["pooled"] = _guard_entry(gs, classes)
    return out


def _aux_tables(a: pd.DataFrame, classes: list[str], infos: dict[int, dict]) -> dict:
    """Theta sweep (Table 5: the thetas of ``aux.sweep``, per fold model and majority vote), the
    three rows of Table 6 (theta = 0: the CNN alone; the recipe's theta; theta = 1: the SVM alone),
    classifier contributions (Table 8) and the SVM guard (:func:`_svm_guard`) of an auxiliary-SVM arm."""
    if "svm_pred" not in a.columns or not infos or "theta" not in next(iter(infos.values())):
        return {}
    first = next(iter(infos.values()))
    thetas = [float(t) for t in first.get("sweep", (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95))]
    own = {k: float(i["theta"]) for k, i in infos.items()}  # each fold's theta (the recipe's, or chosen per fold)
    out: dict = {"theta_sweep": {}, "theta_sweep_vote": {}, "table6": {}, "contributions": {}, "svm_guard": {}}
    for s, gs in a.groupby("set"):
        sweep, six = {}, {}
        out["svm_guard"][s] = _svm_guard(gs, classes)
        for k, g in gs.groupby("fold"):
            cnn, svm_pred, _ = _cnn_and_svm(g, classes)
            y = g["y"].to_numpy(int)
            sweep[str(k)] = theta_sweep(cnn, svm_pred, y, thetas=thetas, class_names=classes)
            six[str(k)] = theta_sweep(cnn, svm_pred, y, thetas=[0.0, own[int(k)], 1.0], class_names=classes)
            correct = (g["pred"] == g["y"]).to_numpy()
            out["contributions"].setdefault(s, {})[str(k)] = contribution_counts(g["answered_by"].to_numpy(), correct)
        out["theta_sweep"][s] = sweep
        out["table6"][s] = {"folds": six}
        if s != "oof":
            out["theta_sweep_vote"][s] = _vote_sweep(gs, classes, thetas)
            out["table6"][s]["vote"] = _vote_sweep(gs, classes, [0.0, own, 1.0])
    return out


def _flat_rows(arm: str, entry: dict) -> list[dict]:
    rows = []
    for k, f in entry["folds"].items():
        for s, m in f.items():
            if s != "info":
                rows.append(_row(arm, f"model{int(k) + 1}", s, m))
    rows.append(_row(arm, "pooled", "oof", entry["pooled_oof"]))
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
