"""Terminal (and report) tables of how far answers can be trusted: calibration, conformal referral,
out-of-domain rates and the per-patient rule (``metrics.json`` ``arms.<arm>.trust``,
:mod:`blastscope.evaluation.trust`)."""
from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from blastscope.reports.tables import set_label

__all__ = ["print_trust_tables"]


def _where(s: str) -> str:
    return "out-of-fold" if s == "oof" else f"vote, {set_label(s)}"


def _ci(value: float, ci: list[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    lo, hi = ci
    interval = "" if lo is None or (isinstance(lo, float) and math.isnan(lo)) else f" [{lo:.2f},{hi:.2f}]"
    return f"{value:.{digits}f}{interval}"


def _rate(m: dict) -> str:
    return "-" if not m.get("n") else f"{m['value']:.2f} {m['k']}/{m['n']} [{m['ci'][0]:.2f},{m['ci'][1]:.2f}]"


def print_trust_tables(metrics: dict, console: Console) -> None:
    for arm, entry in metrics["arms"].items():
        trust = entry.get("trust")
        if not trust:
            continue
        temps = [t for t in trust["temperatures"].values()]
        shown = ", ".join("-" if t is None else f"{t:.2f}" for t in temps)
        t = Table(title=f"{arm}: calibration (ECE: equal-mass bins, 95% CI by resampling subjects; lower is better). "
                        f"Temperatures per fold model, fitted on selection cells: {shown}"
                        + (f"; theta read {trust['theta_on']} probabilities" if trust.get("theta_on") else ""),
                  title_justify="left")
        t.add_column("cells of")
        for col in ("cells", "ECE raw", "ECE calibrated", "Brier raw", "Brier cal.", "NLL raw", "NLL cal."):
            t.add_column(col, justify="right")
        for s, c in sorted(trust["calibration"].items(), key=lambda x: x[0] != "oof"):
            raw, cal = c["raw"], c["calibrated"]
            t.add_row(_where(s), str(raw["cells"]), _ci(raw["ece"], raw["ece_ci"]), _ci(cal["ece"], cal["ece_ci"]),
                      f"{raw['brier']:.3f}", f"{cal['brier']:.3f}", f"{raw['nll']:.3f}", f"{cal['nll']:.3f}")
        console.print(t)
        conformal = trust.get("conformal")
        if conformal:
            classes = list(conformal["calibration_cells"])
            cal_cells = ", ".join(f"{c} {n}" for c, n in conformal["calibration_cells"].items())
            t = Table(title=f"{arm}: conformal referral at alpha {trust['alpha']:g} (coverage per class should be >= "
                            f"{1 - trust['alpha']:.2f}; calibrated on {conformal['calibration_subjects']} subjects: {cal_cells} "
                            "cells; a cell is flagged when its set is not one class)", title_justify="left")
            t.add_column("cells of")
            for c in classes:
                t.add_column(f"coverage {c} [Wilson 95%]", justify="right")
            for col in ("review rate", "error of cells not flagged", "cells"):
                t.add_column(col, justify="right")
            reports = [("oof", conformal["oof"])] + sorted(conformal["vote"].items())
            for s, r in reports:
                cov = [_ci(r["coverage"][c]["coverage"], r["coverage"][c]["ci"], 2) + f" ({r['coverage'][c]['cells']})"
                       for c in classes]
                t.add_row(_where(s), *cov, f"{r['review_rate']:.2f}", _ci(r["error_not_flagged"], r["error_not_flagged_ci"]),
                          str(r["cells"]))
            console.print(t)
        else:
            console.print(f"{arm}: no conformal referral: the run has no calibration cells (set trust.calibration, "
                          "e.g. --set trust.calibration=0.2); predict flags cells by confidence only.")
        ood = trust.get("out_of_domain") or {}
        if ood:
            console.print(f"{arm}: out-of-domain cells (Mahalanobis distance on the model's features, threshold at "
                          "the selection cells' quantile): " + "; ".join(
                              f"{_where(s)} {o['flagged']}/{o['cells']} ({o['rate']:.2f})" for s, o in ood.items()))
        patient = trust.get("patient") or {}
        rows = []
        if patient.get("oof"):
            rows.append(("out-of-fold (threshold per fold, chosen on its selection subjects)", patient["oof"]))
        for s, r in sorted((patient.get("vote") or {}).items()):
            rows.append((f"vote, {set_label(s)} (threshold {r['threshold']:.2f}, chosen on out-of-fold subjects)", r))
        if rows:
            t = Table(title=f"{arm}: per-patient call (leukemic-cell fraction, Wilson 95% CI against the threshold; refer "
                            "when it straddles it; flagged cells counted apart). Sensitivity and specificity over "
                            "subjects not referred", title_justify="left")
            t.add_column("subjects of")
            for col in ("subjects", "sensitivity", "specificity", "refer rate"):
                t.add_column(col, justify="right")
            for label, r in rows:
                t.add_row(label, str(r["subjects"]), _rate(r.get("sensitivity", {})), _rate(r.get("specificity", {})),
                          f"{r.get('refer_rate', float('nan')):.2f}")
            console.print(t)
