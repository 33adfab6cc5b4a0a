"""How far each answer can be trusted, from a run's predictions: calibration, conformal referral,
out-of-domain rates and the validated per-patient call (``metrics.json`` ``arms.<arm>.trust``).

Reads the per-fold predictions only (no torch). Which rows each number reads:

- **Calibration** (:mod:`blastscope.evaluation.calibration`): ECE with a subject-bootstrap CI,
  Brier score and NLL of the raw probability ``p_*`` and of the calibrated one ``cal_p_*`` (the
  CNN's softmax temperature-scaled on the fold's selection cells; the SVM's Platt probability
  where the SVM answered), on the pooled out-of-fold cells and, for the vote (the mean of the fold
  models' probabilities), on each scored held-out set.
- **Conformal referral** (:mod:`blastscope.evaluation.conformal`), when the run has calibration
  cells (``set == "calib"``, ``trust.calibration``): fold model ``k``'s class thresholds come from
  its own predictions of the calibration cells and are applied to its out-of-fold cells; the
  vote's come from the vote's calibration-cell probabilities and are applied to the held-out sets.
  The calibration cells trained nothing, selected nothing and are never scored.
- **Out of domain**: the share of cells the fold model's Mahalanobis check flags (out of fold);
  for the vote a cell is out of domain when most fold models flag it.
- **Patient rule** (:func:`blastscope.inference.subjects.subject_call`): per fold the threshold on
  the leukemic-cell fraction is chosen on that fold model's selection subjects (training subjects)
  and the rule is scored on its out-of-fold subjects; the vote's threshold is chosen on the pooled
  out-of-fold subjects (training subjects of the deployed ensemble) and scored on the held-out
  subjects. Cells flagged for review (conformal) or out of domain are counted apart, not in the
  fraction. Sensitivity and specificity are over the subjects the rule did not refer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from blastscope.data.check import CALIB
from blastscope.evaluation.calibration import calibration_summary
from blastscope.evaluation.ensemble import vote_frame
from blastscope.evaluation.conformal import class_scores, coverage_report, mondrian_thresholds, prediction_sets, set_flags
from blastscope.evaluation.operating_point import is_positive
from blastscope.evaluation.statistics import wilson_interval

__all__ = ["arm_trust", "choose_patient_threshold", "patient_rule", "CALIB"]



def _cols(prefix: str, classes: list[str]) -> list[str]:
    return [f"{prefix}{c}" for c in classes]


def _calibration(frame: pd.DataFrame, classes: list[str], seed: int) -> dict:
    y, groups = frame["y"].to_numpy(int), frame["subject_id"].to_numpy()
    return {"raw": calibration_summary(frame[_cols("p_", classes)].to_numpy(float), y, groups, seed=seed),
            "calibrated": calibration_summary(frame[_cols("cal_p_", classes)].to_numpy(float), y, groups, seed=seed)}


def choose_patient_threshold(fractions: np.ndarray, positive: np.ndarray) -> dict:
    """The threshold on the leukemic-cell fraction that best separates ``positive`` subjects from
    the rest (Youden's J of the point call ``fraction > t``; ties: the one closest to 0.5), from
    the midpoints between the subjects' fractions, kept in [0.05, 0.95]. With subjects of one kind
    only there is nothing to separate and 0.5 is returned (``"chosen": False``)."""
    fractions, positive = np.asarray(fractions, float), np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return {"threshold": 0.5, "chosen": False, "subjects": int(len(fractions))}
    values = np.unique(fractions)
    candidates = np.clip(np.concatenate([(values[1:] + values[:-1]) / 2, [0.5]]), 0.05, 0.95)
    best, best_key = 0.5, None
    for t in candidates:
        called = fractions > t
        j = called[positive].mean() + (~called[~positive]).mean() - 1.0
        key = (round(float(j), 12), -abs(float(t) - 0.5))
        if best_key is None or key > best_key:
            best, best_key = float(t), key
    return {"threshold": best, "chosen": True, "youden_j": best_key[0], "subjects": int(len(fractions))}


def _subject_fractions(frame: pd.DataFrame, classes: list[str], positive, flagged: np.ndarray) -> pd.DataFrame:
    """Per subject: cells, positive cells among the cells not flagged, flagged cells, label positive."""
    f = frame.assign(_pos=is_positive(frame["pred"].to_numpy(int), classes, positive), _flag=flagged,
                     _label_pos=is_positive(frame["y"].to_numpy(int), classes, positive))
    rows = []
    for subject, g in f.groupby("subject_id"):
        kept = g[~g["_flag"]]
        rows.append({"subject_id": subject, "label": g["label"].iloc[0], "positive_subject": bool(g["_label_pos"].iloc[0]),
                     "cells": len(g), "flagged_cells": int(g["_flag"].sum()), "counted_cells": len(kept),
                     "positive_cells": int(kept["_pos"].sum())})
    out = pd.DataFrame(rows)
    out["fraction_positive"] = np.where(out["counted_cells"] > 0, out["positive_cells"] / out["counted_cells"].clip(lower=1), np.nan)
    return out


def patient_rule(subjects: pd.DataFrame, threshold: float) -> dict:
    """Score the patient rule on ``subjects`` (from :func:`_subject_fractions`): per-subject calls,
    sensitivity and specificity with Wilson CIs over the subjects not referred, and the refer rate."""
    from blastscope.inference.subjects import subject_call

    calls = []
    for r in subjects.itertuples():
        if r.counted_cells == 0:
            call = {"call": "refer", "ci_low": float("nan"), "ci_high": float("nan"), "reason": "every cell flagged"}
        else:
            call = subject_call(r.positive_cells, r.counted_cells, threshold)
        calls.append({"subject_id": r.subject_id, "label": r.label, "positive_subject": r.positive_subject, "cells": r.cells,
                      "flagged_cells": r.flagged_cells, "counted_cells": r.counted_cells, "positive_cells": r.positive_cells,
                      "fraction_positive": None if np.isnan(r.fraction_positive) else float(r.fraction_positive),
                      "ci_low": call["ci_low"], "ci_high": call["ci_high"], "call": call["call"]})
    return {"threshold": float(threshold), **_rule_rates(calls)}


def arm_trust(rows: pd.DataFrame, classes: list[str], positive, infos: dict[int, dict], alpha: float = 0.05,
              patient_threshold: float | str = "auto", seed: int = 0) -> dict | None:
    """The ``trust`` entry of one arm (module docstring). ``rows``: every prediction of the arm,
    selection and calibration cells included. None for runs made before calibration columns existed."""
    if f"cal_p_{classes[0]}" not in rows.columns:
        return None
    oof, select, calib = rows[rows["set"] == "oof"], rows[rows["set"] == "select"], rows[rows["set"] == CALIB]
    held = rows[~rows["set"].isin(("oof", "select", CALIB))]
    out: dict = {"alpha": alpha, "temperatures": {str(k): i.get("temperature") for k, i in infos.items()},
                 "theta_on": next((i.get("theta_on") for i in infos.values() if i.get("theta_on")), None),
                 "calibration": {"oof": _calibration(oof, classes, seed)} if len(oof) else {},
                 "conformal": None, "out_of_domain": {}, "patient": {}}
    votes = {s: vote_frame(g, classes) for s, g in held.groupby("set")}
    for s, v in votes.items():
        out["calibration"][s] = _calibration(v, classes, seed)
    # Conformal: per fold model on its out-of-fold cells, and for the vote on the held-out sets.
    oof_flags = pd.Series(False, index=oof.index)
    vote_flags: dict[str, np.ndarray] = {s: np.zeros(len(v), bool) for s, v in votes.items()}
    if len(calib):
        cal_cols = _cols("cal_p_", classes)
        fold_sets, fold_y, fold_pred, fold_thresholds = [], [], [], {}
        for k, g in oof.groupby("fold"):
            c = calib[calib["fold"] == k]
            q = mondrian_thresholds(class_scores(c[cal_cols].to_numpy(float), c["y"].to_numpy(int), len(classes)), alpha)
            sets = prediction_sets(g[cal_cols].to_numpy(float), q)
            fold_sets.append(sets)
            fold_y.append(g["y"].to_numpy(int))
            fold_pred.append(g["pred"].to_numpy(int))
            oof_flags.loc[g.index] = set_flags(sets, fold_pred[-1]) != ""
            fold_thresholds[str(k)] = q.tolist()
        vote_calib = vote_frame(calib, classes)
        scores = class_scores(vote_calib[cal_cols].to_numpy(float), vote_calib["y"].to_numpy(int), len(classes))
        q_vote = mondrian_thresholds(scores, alpha)
        conformal: dict = {"calibration_cells": {c: int(len(s)) for c, s in zip(classes, scores)},
                           "calibration_subjects": int(calib["subject_id"].nunique()),
                           "fold_thresholds": fold_thresholds, "vote_thresholds": q_vote.tolist(),
                           "vote_scores": [s.tolist() for s in scores],
                           "oof": coverage_report(np.concatenate(fold_sets), np.concatenate(fold_y), classes,
                                                  np.concatenate(fold_pred)), "vote": {}}
        for s, v in votes.items():
            sets = prediction_sets(v[cal_cols].to_numpy(float), q_vote)
            vote_flags[s] = set_flags(sets, v["pred"].to_numpy(int)) != ""
            conformal["vote"][s] = coverage_report(sets, v["y"].to_numpy(int), classes, v["pred"].to_numpy(int))
        out["conformal"] = conformal
    if len(oof):
        ood = oof["out_of_domain"].astype(bool)
        out["out_of_domain"]["oof"] = {"cells": int(len(oof)), "flagged": int(ood.sum()), "rate": float(ood.mean())}
    for s, v in votes.items():
        out["out_of_domain"][s] = {"cells": int(len(v)), "flagged": int(v["out_of_domain"].sum()),
                                   "rate": float(v["out_of_domain"].mean())}
    # Patient rule: chosen on training subjects, scored on unseen subjects.
    per_fold, pooled_calls = {}, []
    for k, g in oof.groupby("fold"):
        flagged = (oof_flags.loc[g.index] | g["out_of_domain"].astype(bool)).to_numpy()
        sel = select[select["fold"] == k]
        if patient_threshold == "auto" and len(sel):
            sel_subjects = _subject_fractions(sel, classes, positive, sel["out_of_domain"].astype(bool).to_numpy())
            ok = sel_subjects["counted_cells"] > 0
            choice = choose_patient_threshold(sel_subjects.loc[ok, "fraction_positive"].to_numpy(), sel_subjects.loc[ok, "positive_subject"].to_numpy())
            choice["on"] = "select"
        else:
            choice = {"threshold": 0.5 if patient_threshold == "auto" else float(patient_threshold), "chosen": False,
                      "on": "recipe" if patient_threshold != "auto" else "default (no selection subjects)"}
        result = patient_rule(_subject_fractions(g, classes, positive, flagged), choice["threshold"])
        per_fold[str(k)] = {"choice": choice, **{key: v for key, v in result.items() if key != "calls"}}
        pooled_calls += result["calls"]
    out["patient"]["folds"] = per_fold
    if pooled_calls:
        out["patient"]["oof"] = _rule_rates(pooled_calls)  # each subject called with its own fold's threshold
    if len(oof):
        oof_subjects = _subject_fractions(oof, classes, positive, (oof_flags | oof["out_of_domain"].astype(bool)).to_numpy())
        ok = oof_subjects["counted_cells"] > 0
        vote_choice = (choose_patient_threshold(oof_subjects.loc[ok, "fraction_positive"].to_numpy(), oof_subjects.loc[ok, "positive_subject"].to_numpy())
                       if patient_threshold == "auto" else {"threshold": float(patient_threshold), "chosen": False})
        vote_choice["on"] = "oof" if patient_threshold == "auto" else "recipe"
        out["patient"]["vote_choice"] = vote_choice
        out["patient"]["vote"] = {}
        for s, v in votes.items():
            frame = _subject_fractions(v, classes, positive, vote_flags[s] | v["out_of_domain"].to_numpy(bool))
            out["patient"]["vote"][s] = patient_rule(frame, vote_choice["threshold"])
    return out


def _rule_rates(calls: list[dict]) -> dict:
    """Sensitivity and specificity (Wilson CIs) over the subjects not referred, and the refer rate."""
    c = pd.DataFrame(calls)
    out: dict = {"subjects": int(len(c)), "calls": calls}
    if not len(c):
        return out
    decided = c[c["call"] != "refer"]
    for name, want, kind in (("sensitivity", "leukemic", True), ("specificity", "normal", False)):
        g = decided[decided["positive_subject"] == kind]
        k, n = int((g["call"] == want).sum()), int(len(g))
        low, high = wilson_interval(k, n) if n else (float("nan"), float("nan"))
        out[name] = {"value": k / n if n else float("nan"), "k": k, "n": n, "ci": [low, high]}
    out["referred"] = int((c["call"] == "refer").sum())
    out["refer_rate"] = out["referred"] / len(c)
    return out
