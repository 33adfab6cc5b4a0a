"""The report's figure sections: data prepared from run-folder files, drawn by :mod:`.plots`.

ROC curves use the class probabilities (never hard labels) with the DeLong 95% CI of
:func:`blastscope.evaluation.statistics.delong_auc_ci`; for more than two classes one-vs-rest per
class, and first the positive set against the rest when ``positive`` lists several classes (score:
the sum of their probabilities). The theta sweep (Gehlot et al. 2020 Fig. 10) plots the fold
models' rows and the majority-vote rows (``theta_sweep_vote``) of ``metrics.json``.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from blastscope.reports import plots
from blastscope.reports.markup import FigureWriter, note
from blastscope.reports.run_data import RunData

__all__ = ["curves_section", "roc_section", "confusion_section", "theta_section", "subject_section"]


def _sets(data: RunData) -> list[str]:
    held = sorted({s for e in (data.metrics or {}).get("arms", {}).values() for s in e.get("vote", {})})
    return held + ["oof"]


def _set_label(s: str) -> str:
    from blastscope.reports.tables import set_label

    return "out-of-fold, pooled" if s == "oof" else f"{set_label(s)}, majority vote"


def _frame(data: RunData, arm: str, s: str) -> pd.DataFrame | None:
    source = data.predictions if s == "oof" else data.votes
    if source is None:
        return None
    g = source[(source["arm"] == arm) & (source["set"] == s)]
    return g if len(g) else None


def curves_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="curves">Training curves</h2>']
    for arm in data.arms:
        h = data.histories.get(arm)
        if h:
            png = plots.training_curves({f"Model{k + 1}": v for k, v in sorted(h.items())}, f"{arm}: training curves")
            out.append(fig(f"curves_{arm}", png, f"{arm}: loss and accuracy per epoch, one colour per fold model"))
    if len(out) == 1:
        out.append(note("No history.csv files (auxiliary arms reuse their source arm's training)."))
    return "\n".join(out)


def _roc_targets(data: RunData) -> list[tuple[str, list[str], str]]:
    """``(file key, classes scored together, caption text)`` per ROC panel: the positive class for
    two classes, else every class one-vs-rest, led by the positive SET when ``positive`` lists
    several classes (its score is the sum of their probabilities)."""
    from blastscope.evaluation.operating_point import binary_names, positive_classes

    classes = data.class_names
    pos = positive_classes(classes, data.positive)
    if len(classes) == 2:
        return [(pos[0], pos, f"positive class '{pos[0]}'")]
    targets = [(c, [c], f"'{c}' vs rest") for c in classes]
    if len(pos) > 1:
        negative, positive = binary_names(classes, pos)
        targets.insert(0, ("positive_set", pos, f"'{positive}' vs '{negative}' (sum of their probabilities)"))
    return targets


def roc_section(data: RunData, fig: FigureWriter) -> str:
    from sklearn.metrics import roc_curve

    from blastscope.evaluation.statistics import delong_auc_ci

    out = ['<h2 id="roc">ROC curves</h2>']
    for s in _sets(data):
        for key, members, what in _roc_targets(data):
            curves = []
            for arm in data.arms:
                g = _frame(data, arm, s)
                if g is None:
                    continue
                y = g["label"].isin(members).to_numpy().astype(int)
                score = np.sum([g[f"p_{c}"].to_numpy(float) for c in members], axis=0)
                if y.min() == y.max():
                    continue
                fpr, tpr, _ = roc_curve(y, score)
                ci = delong_auc_ci(y, score)
                curves.append({"label": arm, "fpr": fpr, "tpr": tpr, "auc": ci["auc"], "low": ci["low"], "high": ci["high"]})
            if curves:
                png = plots.roc_curves(curves, textwrap.fill(_set_label(s), 48) + "\n" + textwrap.fill(what, 48))  # a set's names are long
                out.append(fig(f"roc_{s}_{key}", png, f"ROC, {_set_label(s)}, {what}; AUC with DeLong 95% CI "
                                                      "(held-out sets: mean probability of the fold models)"))
    if len(out) == 1:
        out.append(note("No set has cells of both classes: ROC undefined."))
    return "\n".join(out)


def confusion_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="confusion">Confusion matrices</h2>']
    for arm, entry in (data.metrics or {}).get("arms", {}).items():
        panels = [(_set_label(s), m["confusion_matrix"], data.class_names)
                  for s, m in [("oof", entry.get("pooled_oof"))] + list(entry.get("vote", {}).items()) if m]
        if panels:
            out.append(fig(f"confusion_{arm}", plots.confusion_matrices(panels, arm),
                           f"{arm}: confusion matrices (rows true, columns predicted; count and row share)"))
    return "\n".join(out)


def theta_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="theta">Confidence probability theta (Fig. 10)</h2>']
    classes = data.class_names
    panels = [(f"f1_{c}", f"F1 of '{c}'") for c in classes] + [("balanced_accuracy", "balanced accuracy")]
    for arm, entry in (data.metrics or {}).get("arms", {}).items():
        for s, per_fold in sorted((entry.get("theta_sweep") or {}).items(), key=lambda x: x[0] == "oof"):
            first = next(iter(per_fold.values()))
            thetas = [r["theta"] for r in first]
            series = {f"Model{int(k) + 1}": {key: [r[key] for r in rows] for key, _ in panels}
                      for k, rows in sorted(per_fold.items(), key=lambda x: int(x[0]))}
            vote_rows = (entry.get("theta_sweep_vote") or {}).get(s) if s != "oof" else None
            if vote_rows:
                series["Majority vote"] = {key: [r[key] for r in vote_rows] for key, _ in panels}
            png = plots.theta_sweep(thetas, series, panels, f"{arm}: {_set_label(s) if s != 'oof' else 'out-of-fold, each model on its own validation fold'}")
            out.append(fig(f"theta_{arm}_{s}", png, f"{arm}: scores against theta, {_set_label(s)} (Fig. 10 layout)"))
    if len(out) == 1:
        out.append(note("No auxiliary-classifier arm in this recipe: no theta sweep."))
    return "\n".join(out)


def subject_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="subjects">Per-subject accuracy (Fig. 11)</h2>']
    arms = (data.metrics or {}).get("arms", {})
    if not arms:
        return out[0] + note("No metrics.json.")
    arm = list(arms)[-1]
    for s, rows in sorted(arms[arm].get("per_subject", {}).items(), key=lambda x: x[0] == "oof"):
        if rows:
            png = plots.subject_accuracy(rows, data.class_names, f"{arm}: {_set_label(s)}")
            out.append(fig(f"subjects_{arm}_{s}", png, f"{arm}: accuracy per subject on '{s}' (cells in brackets)"))
    return "\n".join(out)


def trust_section(data: RunData, fig: FigureWriter) -> str:
    """Reliability diagrams (raw and calibrated) and a plain-words key to the trust tables."""
    out = ['<h2 id="trust">Trust: calibration, referral, out-of-domain cells, patient call</h2>',
           note("Calibrated probability: each fold CNN's softmax divided by a temperature fitted on its selection "
                "cells (training subjects), the SVM's Platt probability where the SVM answered. Conformal referral: a "
                "cell is flagged when its prediction set at the stated alpha is not a single class; the coverage of each "
                "class is guaranteed to be at least 1 - alpha for cells of new subjects exchangeable with the "
                "calibration subjects, not for any one patient. The tables are above, under the results tables.")]
    for arm, entry in (data.metrics or {}).get("arms", {}).items():
        trust = entry.get("trust")
        if not trust or not trust.get("calibration"):
            continue
        panels = [(("out-of-fold" if s == "oof" else _set_label(s)),
                   {"raw": c["raw"]["reliability"], "calibrated": c["calibrated"]["reliability"]})
                  for s, c in sorted(trust["calibration"].items(), key=lambda x: x[0] != "oof")]
        out.append(fig(f"reliability_{arm}", plots.reliability_diagrams(panels, f"{arm}: reliability"),
                       f"{arm}: reliability diagrams (equal-mass bins): accuracy against confidence, raw and calibrated"))
    if len(out) == 2:
        out.append(note("No calibration data in this run (made before blastscope recorded calibrated probabilities)."))
    return "\n".join(out)
