"""A run's metrics in the layouts of LeukoNet Table 2 and LeukemiaNet Table 1 (reads metrics.json; no torch).

- LeukoNet (Mourya et al. 2018), Table 2: a row per model; for each validation fold (Val0 ..
  Val3) and the test set, accuracy, F1 of the Normal class (F1,N) and F1 of the Cancer class
  (F1,C), in percent. Here each ValK column is fold model K on its own validation fold (run
  folder ``arms/<arm>/fold_K``); the paper numbers its folds from 0, we from 1 as everywhere a
  person reads them) and each held-out set
  (``validation``/``test``) is scored by the majority vote of the fold models (the paper scores
  one model on its test set; it does not say which). Cancer = ``positive``, Normal = the other class.
  Deliberate difference: the paper's three sub-columns per fold become three rows per model
  (Acc, F1,N, F1,C), so that four folds and a test set fit a terminal.
- LeukemiaNet, Table 1: per class TP, TN, FP, FN (one class against the rest), overall
  accuracy, per class precision, recall (sensitivity) and specificity, in percent; columns are
  the evaluations (the paper's "Dataset 1"/"Dataset 2"; here each arm's pooled out-of-fold
  validation predictions and its majority vote on each held-out set). Added beside it, as the
  issue asks: per class F1, macro and weighted F1, and the k x k confusion matrix (Fig. 5;
  rows = true class, columns = predicted class).

Every number is read from ``metrics.json`` (:func:`blastscope.evaluation.aggregate.aggregate_run`,
entries of :func:`blastscope.evaluation.metrics.classification_report_table`); nothing is recomputed.
The ``*_rows`` functions return plain dicts for CSV files; ``render_*`` build rich tables.
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = [
    "confusion_rows", "evaluations", "print_paper_tables", "render_confusion", "render_table1", "render_table2",
    "table1_rows", "table2_rows",
]

_TABLE1_COUNTS = (("TP", "tp"), ("TN", "tn"), ("FP", "fp"), ("FN", "fn"))
_TABLE1_RATIOS = (("Precision", "precision"), ("Recall (sensitivity)", "recall"), ("Specificity", "specificity"), ("F1", "f1"))


def _held_out_sets(metrics: dict) -> list[str]:
    return sorted({s for entry in metrics["arms"].values() for s in entry.get("vote", {})})


def evaluations(metrics: dict, arm: str, per_fold: bool) -> list[tuple[str, dict | None]]:
    """``(label, metrics entry or None)`` of one arm, in table order.

    ``per_fold=True``: ``ValK`` for every fold K (fold model K on its own fold), then
    ``<set> vote`` per held-out set. ``per_fold=False``: ``out-of-fold (pooled)`` (every training cell
    predicted once, out of fold), then the held-out votes. Missing entries are None.
    """
    entry = metrics["arms"][arm]
    if per_fold:
        out = [(f"Val{k + 1}", entry["folds"].get(str(k), {}).get("oof")) for k in range(metrics["n_folds"])]
    else:
        out = [("out-of-fold (pooled)", entry.get("pooled_oof"))]
    return out + [(f"{s} vote", entry.get("vote", {}).get(s)) for s in _held_out_sets(metrics)]


def _normal_cancer(metrics: dict) -> tuple[str, str]:
    classes, positive = list(metrics["class_names"]), metrics["positive"]
    if len(classes) != 2:
        raise ValueError(f"LeukoNet Table 2 needs two classes (normal, cancer), got class_names={classes}")
    return next(c for c in classes if c != positive), positive


def table2_rows(metrics: dict) -> list[dict]:
    """LeukoNet Table 2 as rows ``{arm, evaluation, n, accuracy, f1_normal, f1_cancer}`` (fractions in [0, 1]).

    Raises:
        ValueError: if the run does not have exactly two classes.
    """
    normal, cancer = _normal_cancer(metrics)
    rows = []
    for arm in metrics["arms"]:
        for label, m in evaluations(metrics, arm, per_fold=True):
            if m is None:
                continue
            rows.append({"arm": arm, "evaluation": label, "n": m["n_samples"], "accuracy": m["accuracy"],
                         "f1_normal": m["per_class"][normal]["f1"], "f1_cancer": m["per_class"][cancer]["f1"]})
    return rows


def table1_rows(metrics: dict) -> list[dict]:
    """LeukemiaNet Table 1 as long rows ``{arm, evaluation, metric, class, value}``.

    ``metric`` is one of tp, tn, fp, fn, precision, recall, specificity, f1 (with ``class``) or
    accuracy, macro_f1, weighted_f1 (``class`` empty). Counts are ints, ratios fractions in [0, 1].
    """
    rows = []
    for arm in metrics["arms"]:
        for label, m in evaluations(metrics, arm, per_fold=False):
            if m is None:
                continue
            for c in metrics["class_names"]:
                for key in ("tp", "tn", "fp", "fn", "precision", "recall", "specificity", "f1"):
                    rows.append({"arm": arm, "evaluation": label, "metric": key, "class": c, "value": m["per_class"][c][key]})
            for key in ("accuracy", "macro_f1", "weighted_f1"):
                rows.append({"arm": arm, "evaluation": label, "metric": key, "class": "", "value": m[key]})
    return rows


def confusion_rows(metrics: dict) -> list[dict]:
    """Confusion matrices as rows ``{arm, evaluation, true, <predicted class>: count, ...}``."""
    classes = metrics["class_names"]
    rows = []
    for arm in metrics["arms"]:
        for label, m in evaluations(metrics, arm, per_fold=False):
            if m is None:
                continue
            for c, counts in zip(classes, m["confusion_matrix"]):
                rows.append({"arm": arm, "evaluation": label, "true": c, **{p: int(v) for p, v in zip(classes, counts)}})
    return rows


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}"


def render_table2(metrics: dict) -> Table:
    """LeukoNet Table 2: per arm the rows Acc, F1,N, F1,C (percent); a column per validation fold
    and held-out vote (the paper's three sub-columns per fold become three rows, to fit a terminal)."""
    normal, cancer = _normal_cancer(metrics)
    table = Table(title=f"LeukoNet Table 2 layout (percent; F1,N = F1 of '{normal}', F1,C = F1 of '{cancer}'; "
                        "ValK = fold model K on its own fold; held-out sets by majority vote)", title_justify="left")
    table.add_column("Model name", no_wrap=True)
    table.add_column("", no_wrap=True)
    arms = list(metrics["arms"])
    labels = [label for label, _ in evaluations(metrics, arms[0], per_fold=True)] if arms else []
    for label in labels:
        table.add_column(label, justify="right")
    by_key = {(r["arm"], r["evaluation"]): r for r in table2_rows(metrics)}
    for i, arm in enumerate(arms):
        for j, (name, key) in enumerate((("Acc", "accuracy"), ("F1,N", "f1_normal"), ("F1,C", "f1_cancer"))):
            cells = [_pct(by_key[(arm, label)][key]) if (arm, label) in by_key else "-" for label in labels]
            table.add_row(arm if j == 0 else "", name, *cells, end_section=j == 2 and i < len(arms) - 1)
    return table


def render_table1(metrics: dict) -> Table:
    """LeukemiaNet Table 1: metric rows (per class where it applies), a column per arm and evaluation."""
    classes = metrics["class_names"]
    columns = [(arm, label, m) for arm in metrics["arms"] for label, m in evaluations(metrics, arm, per_fold=False)]
    table = Table(title="LeukemiaNet Table 1 layout (counts; ratios in percent; one class against the rest)",
                  title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("class", no_wrap=True)
    for arm, label, _ in columns:
        table.add_column(f"{arm}\n{label}", justify="right", no_wrap=True)

    def add_block(title: str, key: str, fmt) -> None:
        for i, c in enumerate(classes):
            cells = [fmt(m["per_class"][c][key]) if m else "-" for _, _, m in columns]
            table.add_row(title if i == 0 else "", c, *cells, end_section=i == len(classes) - 1)

    for title, key in _TABLE1_COUNTS:
        add_block(title, key, str)
    table.add_row("Accuracy", "", *[_pct(m["accuracy"]) if m else "-" for _, _, m in columns], end_section=True)
    for title, key in _TABLE1_RATIOS:
        add_block(title, key, _pct)
    table.add_row("Macro F1", "", *[_pct(m["macro_f1"]) if m else "-" for _, _, m in columns])
    table.add_row("Weighted F1", "", *[_pct(m["weighted_f1"]) if m else "-" for _, _, m in columns])
    return table


def render_confusion(metrics: dict, arm: str, evaluation: str) -> Table:
    """The confusion matrix of one arm and evaluation (rows = true, columns = predicted)."""
    classes = metrics["class_names"]
    rows = [r for r in confusion_rows(metrics) if r["arm"] == arm and r["evaluation"] == evaluation]
    if not rows:
        raise ValueError(f"no confusion matrix for arm={arm!r} evaluation={evaluation!r}")
    table = Table(title=f"{arm}, {evaluation}: confusion matrix (rows true, columns predicted)", title_justify="left")
    table.add_column("true \\ predicted")
    for c in classes:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(r["true"], *[str(r[c]) for c in classes])
    return table


def print_paper_tables(metrics: dict, console: Console | None = None) -> bool:
    """Print the paper layout of the run's recipe, if it has one; returns whether anything was printed.

    ``leukonet*`` recipes: Table 2 (two classes; Table 1 otherwise). ``leukemianet*``: Table 1
    and the confusion matrices.
    """
    recipe = str(metrics.get("recipe", ""))
    if not metrics.get("arms") or not recipe.startswith(("leukonet", "leukemianet")):
        return False
    console = console or Console()
    if recipe.startswith("leukonet") and len(metrics["class_names"]) == 2:
        console.print(render_table2(metrics))
        return True
    console.print(render_table1(metrics))
    for arm in metrics["arms"]:
        for label, m in evaluations(metrics, arm, per_fold=False):
            if m is not None:
                console.print(render_confusion(metrics, arm, label))
    return True
