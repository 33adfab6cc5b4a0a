"""Terminal tables of a run's metrics in the papers' layouts (reads metrics.json dicts; no torch).

Gehlot et al. 2020 Tables 4 and 6: one block per metric, a row per architecture, a column per fold
model (Model1..Modelk) and the majority vote. On the validation folds the last column is the
pooled out-of-fold score instead of a vote (each fold model sees only its own fold). Under the
papers' protocol (``data.selection=fold``) those fold scores are titled "selection fold
(optimistic)": the fold chose its own model's best epoch.
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["print_run_tables", "metric_blocks", "val_title", "set_label"]


def _positive_set(metrics: dict) -> list[str] | None:
    """The positive classes when ``positive`` names two or more of them, else None."""
    pos = metrics["positive"]
    return None if isinstance(pos, str) or len(pos) < 2 else list(pos)


def metric_blocks(metrics: dict) -> list[tuple[str, str]]:
    """``(label, key)`` rows. With a set of positive classes (more than two classes) a last row
    ``op_auc`` gives the ROC AUC of the set against the rest (sum of its probabilities), read
    from the operating-point entries of ``metrics.json``; :func:`print_run_tables` names the set."""
    classes, pos = metrics["class_names"], metrics["positive"]
    blocks = [(f"F1 {c}" + (" (cancer)" if c == pos and len(classes) == 2 else " (normal)" if len(classes) == 2 else ""), f"f1:{c}") for c in classes]
    blocks += [("Weighted F1 (WF1)", "weighted_f1"), ("Balanced accuracy (BAC)", "balanced_accuracy"), ("Accuracy", "accuracy")]
    if len(classes) == 2:
        blocks.append(("ROC AUC [DeLong 95% CI]", "auc"))
    elif _positive_set(metrics):  # the set is named in the line above the tables (print_run_tables)
        blocks.append(("ROC AUC positive set vs rest [DeLong 95% CI]", "op_auc"))
    return blocks


def _value(m: dict | None, key: str) -> str:
    if not m:
        return "-"
    if key.startswith("f1:"):
        return f"{m['per_class'][key[3:]]['f1']:.3f}"
    if key in ("auc", "op_auc"):  # op_auc: ``m`` is the operating-point entry, whose AUC is the set's
        a = m.get("auc")
        return "-" if not a else f"{a['auc']:.3f} [{a['low']:.2f},{a['high']:.2f}]"
    return f"{m[key]:.3f}"


def _entry_sets(entry: dict, key: str) -> tuple[dict, dict | None, dict]:
    """(per-fold entries, pooled val, votes) of an arm: the argmax ones, or the operating point's for ``op_auc``."""
    if key == "op_auc":
        op = entry.get("operating_point") or {}
        return op.get("folds") or {}, op.get("pooled_oof"), op.get("vote") or {}
    return entry["folds"], entry["pooled_oof"], entry["vote"]


HELD_OUT_SOURCES = {"validation": "C-NMC validation_data, the preliminary test set",
                    "test": "C-NMC testing_data, the final test set"}


def set_label(s: str) -> str:
    """What a person reads for a set name: ``oof`` is the out-of-fold set; every other set is a
    held-out test set of subjects no fold trained on, with where it came from."""
    if s == "oof":
        return "out-of-fold"
    source = HELD_OUT_SOURCES.get(s)
    return f"held-out test set '{s}'" + (f" ({source})" if source else "")


def val_title(metrics: dict) -> str:
    """What the per-fold ``oof`` scores are: out-of-fold, or the optimistic selection fold."""
    if metrics.get("selection", "fold") == "fold":
        return "selection fold (optimistic): each model on the fold that chose its best epoch"
    return "out-of-fold: each model on its own validation fold, which no choice read"


def _sweep_table(title: str, rows_by_model: dict[str, list[dict]], vote: list[dict] | None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("theta", justify="right")
    models = sorted(rows_by_model, key=int)
    for k in models:
        table.add_column(f"Model{int(k) + 1}", justify="right")
    if vote:
        table.add_column("Majority vote", justify="right", style="bold")
    for j, row in enumerate(rows_by_model[models[0]]):
        cells = [f"{rows_by_model[k][j]['weighted_f1']:.3f}" for k in models]
        table.add_row(f"{row['theta']:.2f}", *cells, *([f"{vote[j]['weighted_f1']:.3f}"] if vote else []))
    return table


def _guard_table(arm: str, s: str, guard: dict, metrics: dict) -> Table:
    where = val_title(metrics).split(":")[0] if s == "oof" else set_label(s)
    table = Table(title=f"{arm}: did the SVM help? ({where}; accuracy, correct/cells [Wilson 95% CI])", title_justify="left")
    table.add_column("model")
    for col in ("CNN on cells it kept", "SVM on cells it answered", "CNN on those same cells", "verdict"):
        table.add_column(col, justify="right" if col != "verdict" else "left")

    def cell(m: dict) -> str:
        return "-" if not m["n"] else f"{m['value']:.3f} {m['k']}/{m['n']} [{m['low']:.2f},{m['high']:.2f}]"

    for key in sorted((k for k in guard if k != "pooled"), key=int) + ["pooled"]:
        g = guard[key]
        table.add_row("pooled" if key == "pooled" else f"Model{int(key) + 1}", cell(g["cnn_kept"]), cell(g["svm_answered"]),
                      cell(g["cnn_on_svm_cells"]), g["verdict"])
    return table


def print_run_tables(metrics: dict, console: Console | None = None) -> None:
    console = console or Console()
    arms = metrics["arms"]
    if metrics.get("image_level"):
        console.print("[bold red]IMAGE-LEVEL evaluation: cells of one subject may sit in train and test; scores are optimistic.")
    else:
        console.print(f"Subject-level evaluation, {metrics['n_folds']} folds ({metrics['fold_mode']} folds). Recipe: {metrics['recipe']}")
    if metrics.get("selection", "fold") == "fold":
        console.print("Model choices (best epoch, Platt scaling, operating point) were made on the validation fold "
                      "(the papers' protocol): its scores are optimistic; only a separate held-out set is unbiased.")
    else:
        console.print("Model choices (best epoch, Platt scaling, operating point) were made on inner training subjects; "
                      "the validation folds were scored untouched.")
    if positive_set := _positive_set(metrics):
        from blastscope.evaluation.operating_point import binary_names

        negative, positive = binary_names(metrics["class_names"], positive_set)
        console.print(f"Binary question: {positive} against {negative}; positive score = sum of the probabilities "
                      f"of {', '.join(positive_set)}. Per-class rows stay per class.")
    for arm, entry in arms.items():
        if entry.get("svm_saw_scored_fold"):
            console.print(f"[bold red]WARNING: {arm}: its SVM trained on every training cell, each fold's own validation "
                          "cells included (aux.svm_cells: all_training, the released code): its out-of-fold scores are "
                          "optimistic; only the held-out test sets are unbiased for it.")
        if entry.get("collapsed"):
            models = ", ".join(f"Model{k + 1}" for k in entry["collapsed"])
            console.print(f"[bold red]WARNING: {arm}: {models} predicted ONE class for every cell it scored (collapsed); "
                          "its scores say nothing about the method: train longer or lower the learning rate.")
    n = metrics["n_folds"]
    sets = sorted({s for a in arms.values() for s in a["vote"]}) + ["oof"]
    for s in sets:
        title = f"{val_title(metrics)} (last column pooled)" if s == "oof" else set_label(s)
        table = Table(title=f"{title}", title_justify="left")
        table.add_column("metric", no_wrap=True)
        table.add_column("architecture", no_wrap=True)
        for k in range(n):
            table.add_column(f"Model{k + 1}", justify="right")
        table.add_column("Pooled" if s == "oof" else "Majority vote", justify="right", style="bold")
        for label, key in metric_blocks(metrics):
            for i, (arm, entry) in enumerate(arms.items()):
                folds, pooled, vote = _entry_sets(entry, key)
                cells = [_value(folds.get(str(k), {}).get(s), key) for k in range(n)]
                last = pooled if s == "oof" else vote.get(s)
                table.add_row(label if i == 0 else "", arm, *cells, _value(last, key), end_section=i == len(arms) - 1)
        console.print(table)
    for arm, entry in arms.items():
        for s, sweep in (entry.get("theta_sweep") or {}).items():
            if s == "oof":
                continue
            vote = (entry.get("theta_sweep_vote") or {}).get(s)
            console.print(_sweep_table(f"{arm}: weighted F1 vs theta on the {set_label(s)} (Table 5)", sweep, vote))
            six = (entry.get("table6") or {}).get(s)
            if six:
                console.print(_sweep_table(f"{arm}: weighted F1 on the {set_label(s)} at theta = 0 (CNN alone, SDCT-Net), the "
                                           "recipe's theta and 1 (SVM alone) (Table 6)", six["folds"], six.get("vote")))
        for s, per_fold in (entry.get("contributions") or {}).items():
            if s == "oof":
                continue
            table = Table(title=f"{arm}: who answered on the {set_label(s)} (Table 8; correct/answered)", title_justify="left")
            table.add_column("classifier")
            for k in sorted(per_fold, key=int):
                table.add_column(f"Model{int(k) + 1}", justify="right")
            for who in ("cnn", "svm", "total"):
                table.add_row(who.upper() if who != "total" else "total",
                              *[f"{per_fold[k][who]['correct']}/{per_fold[k][who]['answered']}" for k in sorted(per_fold, key=int)])
            console.print(table)
        for s, guard in (entry.get("svm_guard") or {}).items():
            console.print(_guard_table(arm, s, guard, metrics))
    from blastscope.reports.trust_tables import print_trust_tables

    print_trust_tables(metrics, console)
    from blastscope.reports.paper_tables import print_paper_tables

    print_paper_tables(metrics, console)  # LeukoNet Table 2 / LeukemiaNet Table 1 layouts for their recipes
    if str(metrics.get("recipe", "")).startswith("spike"):
        from blastscope.reports.spike_table import print_spike_tables

        print_spike_tables(metrics, console)  # Spike-PCA-ResNet Table 5 layout with CIs and the operating point
