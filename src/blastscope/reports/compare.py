"""One table of the same metrics across run folders, with the caveats that make it honest.

Methods are comparable only when evaluated on the same subject folds: runs are grouped by their
``folds.csv`` assignment (path -> fold, held-out rows included) and every group gets a letter;
rows whose group differs from the first run's are marked. Image-level runs (cells of a subject in
several folds, optimistic) are marked too. Metrics are read from each run's ``metrics.json``
(:func:`blastscope.evaluation.aggregate.aggregate_run`): the majority vote on each held-out set
and the pooled out-of-fold validation predictions. Reads files only; never imports torch.

Also marked: runs whose training settings differ from the first run's (epochs, image size,
profile, optimiser, learning rate, batch size, selection protocol; read from ``config.yaml``) and
runs with unfinished folds. :func:`paired_tests` compares every two (run, arm) pairs on the same
cells: the paired DeLong test of the AUC difference (binary questions) and the exact McNemar
test of the accuracy difference, each with its p-value; pairs whose cells differ are listed as
not comparable instead.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from blastscope.reports.run_data import ReportError, read_csv
from blastscope.run_layout import fold_dir

__all__ = ["Comparison", "compare_runs", "fold_assignment", "comparison_table", "training_settings", "unfinished_folds",
           "paired_tests", "paired_table"]

TRAINING_KEYS = (("train", "epochs"), ("train", "batch_size"), ("train", "optimizer", "name"), ("train", "optimizer", "lr"),
                 ("train", "schedule", "name"), ("data", "canvas"), ("data", "resize"), ("data", "selection"), ("profile",))

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


def training_settings(run_dir: Path | str) -> dict[str, object]:
    """The settings of :data:`TRAINING_KEYS` from a run's ``config.yaml`` (dotted keys; absent -> None)."""
    from blastscope.config import safe_yaml

    config = safe_yaml((Path(run_dir) / "config.yaml").read_text()) or {}
    out = {}
    for key in TRAINING_KEYS:
        node = config
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        out[".".join(key)] = node
    return out


def unfinished_folds(run_dir: Path | str) -> list[str]:
    """``"<arm> fold <k>"`` (1-based) for every arm fold of the run without its ``fold.json``."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    return [f"{arm} fold {k + 1}" for arm in run["arms"] for k in range(int(run["n_folds"]))
            if not (fold_dir(run_dir, arm, k) / "fold.json").exists()]


def _labels(run_dirs: list[Path]) -> list[str]:
    names = [p.name or str(p) for p in run_dirs]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(run_dirs, names)]


def _row(label: str, run: dict, arm: str, s: str, m: dict, group: str, marks: list[str]) -> dict:
    auc = m.get("auc") or {}
    return {"run": label, "recipe": run["recipe"], "arm": arm, "set": s, "n": m["n_samples"],
            **{k: m[k] for k in METRICS}, "auc": auc.get("auc"), "auc_low": auc.get("low"), "auc_high": auc.get("high"),
            "folds": group, "image_level": bool(run.get("image_level")), "marks": "; ".join(marks)}


def compare_runs(run_dirs: list[Path | str], sets: list[str] | None = None) -> Comparison:
    """Compare runs; ``sets`` limits the rows (held-out set names and/or ``oof``)."""
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
    settings = [training_settings(d) if (d / "config.yaml").exists() else {} for d in run_dirs]
    rows = []
    for label, d, a, mine in zip(labels, run_dirs, assignments, settings):
        run = json.loads((d / "run.json").read_text())
        marks = []
        differ = [f"{k} {mine.get(k)!r} vs {v!r}" for k, v in settings[0].items() if mine.get(k) != v]
        if differ:
            marks.append(f"training differs from {labels[0]}: " + ", ".join(differ))
        if missing := unfinished_folds(d):
            marks.append(f"UNFINISHED: {', '.join(missing[:4])}" + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
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
            candidates = list(entry.get("vote", {}).items()) + [("oof", entry.get("pooled_oof"))]
            for s, m in candidates:
                if m and (sets is None or s in sets):
                    rows.append(_row(label, run, arm, s, m, groups[label], marks))
    if len(set(groups.values())) > 1:
        notes.append("Runs with different fold letters were cross-validated on different subject folds (or different "
                     "data): their validation scores are not directly comparable (held-out sets are, if they hold the "
                     "same cells).")
    if any("training differs" in r["marks"] for r in rows):
        notes.append("Runs marked 'training differs' were trained with other settings: a difference in their scores "
                     "may come from the settings, not the method.")
    if any("UNFINISHED" in r["marks"] for r in rows):
        notes.append("UNFINISHED runs are scored on the folds that finished only.")
    if any(r["image_level"] for r in rows):
        notes.append("IMAGE-LEVEL runs split cells of one subject across folds; their scores are optimistic.")
    return Comparison(pd.DataFrame(rows), groups, notes)


def comparison_table(cmp: Comparison):
    """A ``rich.table.Table`` of the comparison (the CLI prints it)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title="Comparison across runs (held-out test sets: majority vote; oof: pooled out-of-fold)", title_justify="left")
    for col in ("run", "arm", "set", "n", "acc", "BAC", "WF1", "macro F1", "AUC [95% CI]", "folds", "marks"):
        t.add_column(col, justify="right" if col in ("n", "acc", "BAC", "WF1", "macro F1") else "left")
    for r in cmp.rows.to_dict("records"):
        auc = "-" if r["auc"] is None or pd.isna(r["auc"]) else f"{r['auc']:.3f} [{r['auc_low']:.2f},{r['auc_high']:.2f}]"
        t.add_row(Text(str(r["run"])), Text(str(r["arm"])), Text(str(r["set"])), str(r["n"]), f"{r['accuracy']:.3f}", f"{r['balanced_accuracy']:.3f}",
                  f"{r['weighted_f1']:.3f}", f"{r['macro_f1']:.3f}", auc, r["folds"],
                  Text(r["marks"], style="bold red"))
    return t


def _scored_frames(label: str, run_dir: Path) -> dict[tuple[str, str, str], pd.DataFrame]:
    """``(run, arm, set) -> frame`` indexed by path: held-out sets as voted, ``oof`` pooled out of fold."""
    out = {}
    for name, wanted in (("predictions_vote.csv", None), ("predictions.csv", "oof")):
        path = run_dir / name
        if not path.exists():
            continue
        frame = read_csv(path)
        for (arm, s), g in frame.groupby(["arm", "set"]):
            if (wanted is None and s != "oof") or s == wanted:
                out[(label, arm, s)] = g.set_index("path").sort_index()
    return out


def paired_tests(run_dirs: list[Path | str], sets: list[str] | None = None) -> pd.DataFrame:
    """Paired tests between every two (run, arm) on the same set: one row per pair with
    ``cells`` ("same" or why not), the McNemar accuracy test and, for two classes, the paired
    DeLong AUC test (score ``p_<positive>``; a set of positive classes sums their columns)."""
    from blastscope.evaluation.statistics import delong_test, mcnemar_test

    run_dirs = [Path(p) for p in run_dirs]
    frames: dict[tuple[str, str, str], pd.DataFrame] = {}
    positives = {}
    for label, d in zip(_labels(run_dirs), run_dirs):
        frames.update(_scored_frames(label, d))
        run = json.loads((d / "run.json").read_text())
        positives[label] = (run["class_names"], run["positive"])
    rows = []
    keys = sorted(frames, key=lambda k: (k[2], list(frames).index(k)))
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if a[2] != b[2] or (sets is not None and a[2] not in sets):
                continue
            fa, fb = frames[a], frames[b]
            row = {"set": a[2], "run_a": a[0], "arm_a": a[1], "run_b": b[0], "arm_b": b[1], "n": len(fa)}
            if not fa.index.equals(fb.index):
                row["cells"] = f"not the same cells ({len(fa)} vs {len(fb)}, {len(fa.index.intersection(fb.index))} shared)"
                rows.append(row)
                continue
            if not (fa["y"].astype(int).to_numpy() == fb["y"].astype(int).to_numpy()).all():
                row["cells"] = "same files, different labels"
                rows.append(row)
                continue
            row["cells"] = "same"
            y = fa["y"].astype(int).to_numpy()
            m = mcnemar_test(fa["pred"].astype(int).to_numpy() == y, fb["pred"].astype(int).to_numpy() == y)
            row.update({"accuracy_a": m["accuracy_a"], "accuracy_b": m["accuracy_b"], "mcnemar_p": m["p_value"]})
            classes, positive = positives[a[0]]
            if len(classes) == 2 and positives[b[0]] == positives[a[0]]:
                pos = [positive] if isinstance(positive, str) else list(positive)
                is_pos = np.isin(y, [classes.index(p) for p in pos]).astype(int)
                score = lambda f: f[[f"p_{p}" for p in pos]].astype(float).sum(axis=1).to_numpy()  # noqa: E731
                if 0 < is_pos.sum() < len(is_pos):
                    d = delong_test(is_pos, score(fa), score(fb))
                    row.update({"auc_a": d["auc_a"], "auc_b": d["auc_b"], "auc_difference": d["difference"],
                                "delong_p": d["p_value"]})
            rows.append(row)
    return pd.DataFrame(rows)


def paired_table(tests: pd.DataFrame):
    """A ``rich.table.Table`` of :func:`paired_tests`."""
    from rich.table import Table

    from rich.text import Text

    t = Table(title="Paired tests on the same cells (McNemar: accuracy; DeLong: AUC)", title_justify="left")
    for col in ("set", "A", "B", "n", "acc A", "acc B", "McNemar p", "AUC A", "AUC B", "DeLong p", "cells"):
        t.add_column(col, justify="left" if col in ("set", "A", "B", "cells") else "right")

    def f(r: dict, key: str, fmt: str = ".3f") -> str:
        v = r.get(key)
        return "-" if v is None or pd.isna(v) else format(v, fmt)

    for r in tests.to_dict("records"):
        t.add_row(Text(str(r["set"])), Text(f"{r['run_a']}/{r['arm_a']}"), Text(f"{r['run_b']}/{r['arm_b']}"), str(r["n"]), f(r, "accuracy_a"),
                  f(r, "accuracy_b"), f(r, "mcnemar_p", ".3g"), f(r, "auc_a"), f(r, "auc_b"), f(r, "delong_p", ".3g"), r["cells"])
    return t
