"""The model card of a bundle: what the model was trained on, how it was evaluated, what for.

Built from the run folder's files only (``run.json`` with its ``provenance``, ``index.csv``,
``metrics.json``) when a bundle is exported; ``bundle.json`` carries it as ``model_card`` and
``predict`` repeats it in its JSON (and warns when the cells were synthetic).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from blastscope.engine.atomic import read_safe_csv

__all__ = ["model_card", "INTENDED_USE"]

INTENDED_USE = ("Research use: pre-classification of single segmented white-blood-cell images for review by "
                "a qualified person. Not a diagnostic device; every call must be confirmed by a technologist.")


def _headline(m: dict | None) -> dict | None:
    if not m:
        return None
    out = {"n_cells": m.get("n_samples"), "accuracy": m.get("accuracy_ci"), "weighted_f1": m.get("weighted_f1")}
    if m.get("auc"):
        out["auc"] = {k: m["auc"][k] for k in ("auc", "low", "high")}
    for key in ("sensitivity_ci", "specificity_ci"):
        if key in m:
            out[key.removesuffix("_ci")] = m[key]
    return out


def model_card(run_dir: Path, arm: str) -> dict:
    """The model card of ``arm`` of the finished run folder ``run_dir``."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    prov = run.get("provenance") or {}
    index = read_safe_csv(run_dir / "index.csv", keep_default_na=False, dtype=str)
    train = index[~index["split"].isin(["validation", "test"])]
    per_class = {c: {"cells": int(len(g)), "subjects": int(g["subject_id"].replace("", pd.NA).dropna().nunique())}
                 for c, g in train.groupby("label")}
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    entry = (metrics.get("arms") or {}).get(arm) or {}
    selection = run.get("selection", "fold")
    op = entry.get("operating_point") or {}
    return {
        "training_data": {
            "data_dir": prov.get("data_dir"), "synthetic": prov.get("synthetic"),
            "sources": sorted(set(index["source"])) if "source" in index else None,
            "index_digest": prov.get("index_digest"), "per_class": per_class,
        },
        "evaluation": {
            "grouping": run.get("grouping"), "fold_mode": run.get("fold_mode"), "image_level": run.get("image_level"),
            "n_folds": run.get("n_folds"), "selection": selection,
            "out_of_fold_label": "selection fold (optimistic)" if selection == "fold" else "out-of-fold",
        },
        "headline": {"out_of_fold": _headline(entry.get("pooled_oof")),
                     "held_out_vote": {s: _headline(m) for s, m in (entry.get("vote") or {}).items()}},
        "operating_point": {"target_sensitivity": op.get("target_sensitivity"), "vote_threshold": op.get("vote_threshold"),
                            "chosen_on": op.get("chosen_on")} if op else None,
        "intended_use": INTENDED_USE,
        "versions": prov.get("versions"),
    }
