"""One table of the same metrics across run folders, with the caveats that make it honest.

Methods are comparable only when evaluated on the same subject folds: runs are grouped by their
``folds.csv`` assignment (path -> fold, held-out rows included) and every group gets a letter;
rows whose group differs from the first run's are marked. Image-level runs (cells of a subject in
several folds, optimistic) are marked too. Metrics are read from each run's ``metrics.json``
(:func:`blastscope.evaluation.aggregate.aggregate_run`): the majority vote on each held-out set
and the pooled out-of-fold validation predictions. Reads files only; never imports torch.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from blastscope.reports.run_data import ReportError, read_csv

__all__ = ["Comparison", "compare_runs", "fold_assignment", "comparison_table"]

METRICS = ("accuracy", "balanced_accuracy", "weighted_f1", "macro_f1")


@dataclass
class Comparison:
    """``rows``: one per (run, arm, set); ``groups``: run label -> fold-group letter; ``notes``: caveats."""

    rows: pd.DataFrame
    groups: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fold_assignment(run_dir: Path | str) -> dict[str, int]:
    """``path -> fold`` from ``folds.csv`` (held-out rows have fold -1)."""
    path = Path(run_dir) / "folds.csv"
    if not path.exists():
        raise ReportError(f"{path}: missing; not a finished run folder")
    f = read_csv(path)
    return dict(zip(f["path"].astype(str), f["fold"].astype(int)))


def _labels(run_dirs: list[Path]) -> list[str]:
    names = [p.name or str(p) for p in run_dirs]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(run_dirs, names)]


def _row(label: str, run: dict, arm: str, s: str, m: dict, group: str, marks: list[str]) -> dict:
    auc = m.get("auc") or {}
    return {"run": label, "recipe": run["recipe"], "arm": arm, "set": s, "n": m["n_samples"],
            **{k: m[k] for k in METRICS}, "auc": auc.get("auc"), "auc_low": auc.get("low"), "auc_high": auc.get("high"),
            "folds": group, "image_level": bool(run.get("image_level")), "marks": "; ".join(marks)}


def compare_runs(run_dirs: list[Path | str], sets: list[str] | None = None) -> Comparison:
    """Compare runs; ``sets`` limits the rows (held-out set names and/or ``val``)."""
    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    labels = _labels(run_dirs)
    assignments, groups, notes = [], {}, []
    for label, d in zip(labels, run_dirs):
        a = fold_assignment(d)
        for i, prev in enumerate(assignments):
            if prev == a:
                groups[label] = groups[labels[i]]
                break
        else:
            groups[label] = string.ascii_uppercase[len(set(groups.values())) % 26]
        assignments.append(a)
    reference = groups[labels[0]]
    rows = []
    for label, d, a in zip(labels, run_dirs, assignments):
        run = json.loads((d / "run.json").read_text())
        marks = []
        if groups[label] != reference:
            same_data = set(a) == set(assignments[0])
            marks.append(f"folds differ from {labels[0]}" if same_data else f"different data from {labels[0]}")
        if run.get("image_level"):
            marks.append("IMAGE-LEVEL (optimistic)")
        mpath = d / "metrics.json"
        if not mpath.exists():
            notes.append(f"{label}: no metrics.json (run `blastscope aggregate {d}`); left out")
            continue
        metrics = json.loads(mpath.read_text())
        for arm, entry in metrics["arms"].items():
            candidates = list(entry.get("vote", {}).items()) + [("val", entry.get("pooled_val"))]
            for s, m in candidates:
                if m and (sets is None or s in sets):
                    rows.append(_row(label, run, arm, s, m, groups[label], marks))
    if len(set(groups.values())) > 1:
        notes.append("Runs with different fold letters were cross-validated on different subject folds (or different "
                     "data): their validation scores are not directly comparable (held-out sets are, if they hold the "
                     "same cells).")
    if any(r["image_level"] for r in rows):
        notes.append("IMAGE-LEVEL runs split cells of one subject across folds; their scores are optimistic.")
    return Comparison(pd.DataFrame(rows), groups, notes)


def comparison_table(cmp: Comparison):
    """A ``rich.table.Table`` of the comparison (the CLI prints it)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title="Comparison across runs (held-out sets: majority vote; val: pooled out-of-fold)", title_justify="left")
    for col in ("run", "arm", "set", "n", "acc", "BAC", "WF1", "macro F1", "AUC [95% CI]", "folds", "marks"):
        t.add_column(col, justify="right" if col in ("n", "acc", "BAC", "WF1", "macro F1") else "left")
    for r in cmp.rows.to_dict("records"):
        auc = "-" if r["auc"] is None or pd.isna(r["auc"]) else f"{r['auc']:.3f} [{r['auc_low']:.2f},{r['auc_high']:.2f}]"
        t.add_row(r["run"], r["arm"], r["set"], str(r["n"]), f"{r['accuracy']:.3f}", f"{r['balanced_accuracy']:.3f}",
                  f"{r['weighted_f1']:.3f}", f"{r['macro_f1']:.3f}", auc, r["folds"],
                  Text(r["marks"], style="bold red"))
    return t
