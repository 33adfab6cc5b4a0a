"""Terminal tables of a run's metrics in the papers' layouts (reads metrics.json dicts; no torch).

Gehlot et al. 2020 Tables 4 and 6: one block per metric, a row per architecture, a column per fold
model (Model1..Modelk) and the majority vote. On the validation folds the last column is the
pooled out-of-fold score instead of a vote (each fold model sees only its own fold).
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["print_run_tables", "metric_blocks"]


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
        return op.get("folds") or {}, op.get("pooled_val"), op.get("vote") or {}
    return entry["folds"], entry["pooled_val"], entry["vote"]


def print_run_tables(metrics: dict, console: Console | None = None) -> None:
    console = console or Console()
    arms = metrics["arms"]
    if metrics.get("image_level"):
        console.print("[bold red]IMAGE-LEVEL evaluation: cells of one subject may sit in train and test; scores are optimistic.")
    else:
        console.print(f"Subject-level evaluation, {metrics['n_folds']} folds ({metrics['fold_mode']} folds). Recipe: {metrics['recipe']}")
    if positive_set := _positive_set(metrics):
        from blastscope.evaluation.operating_point import binary_names

        negative, positive = binary_names(metrics["class_names"], positive_set)
        console.print(f"Binary question: {positive} against {negative}; positive score = sum of the probabilities "
                      f"of {', '.join(positive_set)}. Per-class rows stay per class.")
    n = metrics["n_folds"]
    sets = sorted({s for a in arms.values() for s in a["vote"]}) + ["val"]
    for s in sets:
        title = "validation folds (each model on its own fold; last column pooled out-of-fold)" if s == "val" else f"held-out '{s}' set"
        table = Table(title=f"{title}", title_justify="left")
        table.add_column("metric", no_wrap=True)
        table.add_column("architecture", no_wrap=True)
        for k in range(n):
            table.add_column(f"Model{k + 1}", justify="right")
        table.add_column("Pooled" if s == "val" else "Majority vote", justify="right", style="bold")
        for label, key in metric_blocks(metrics):
            for i, (arm, entry) in enumerate(arms.items()):
                folds, pooled, vote = _entry_sets(entry, key)
                cells = [_value(folds.get(str(k), {}).get(s), key) for k in range(n)]
                last = pooled if s == "val" else vote.get(s)
                table.add_row(label if i == 0 else "", arm, *cells, _value(last, key), end_section=i == len(arms) - 1)
        console.print(table)
    for arm, entry in arms.items():
        for s, sweep in (entry.get("theta_sweep") or {}).items():
            if s == "val":
                continue
            thetas = [r["theta"] for r in next(iter(sweep.values()))]
            table = Table(title=f"{arm}: weighted F1 vs theta on '{s}' (Table 5)", title_justify="left")
            table.add_column("theta", justify="right")
            for k in sorted(sweep, key=int):
                table.add_column(f"Model{int(k) + 1}", justify="right")
            for j, theta in enumerate(thetas):
                table.add_row(f"{theta:.2f}", *[f"{sweep[k][j]['weighted_f1']:.3f}" for k in sorted(sweep, key=int)])
            console.print(table)
        for s, per_fold in (entry.get("contributions") or {}).items():
            if s == "val":
                continue
            table = Table(title=f"{arm}: who answered on '{s}' (Table 8; correct/answered)", title_justify="left")
            table.add_column("classifier")
            for k in sorted(per_fold, key=int):
                table.add_column(f"Model{int(k) + 1}", justify="right")
            for who in ("cnn", "svm", "total"):
                table.add_row(who.upper() if who != "total" else "total",
                              *[f"{per_fold[k][who]['correct']}/{per_fold[k][who]['answered']}" for k in sorted(per_fold, key=int)])
            console.print(table)
    from blastscope.reports.paper_tables import print_paper_tables

    print_paper_tables(metrics, console)  # LeukoNet Table 2 / LeukemiaNet Table 1 layouts for their recipes
    if str(metrics.get("recipe", "")).startswith("spike"):
        from blastscope.reports.spike_table import print_spike_tables

        print_spike_tables(metrics, console)  # Spike-PCA-ResNet Table 5 layout with CIs and the operating point
