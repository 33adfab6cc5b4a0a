"""LeukoNet Table 2 and LeukemiaNet Table 1 renderers against hand-built metrics.

The metrics dicts are built the way metrics.json stores them (classification_report_table per
arm/fold/set); the expected numbers come from scikit-learn on the same random labels.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from blastscope.evaluation.metrics import classification_report_table
from blastscope.reports.paper_tables import (
    confusion_rows,
    print_paper_tables,
    render_table1,
    render_table2,
    table1_rows,
    table2_rows,
)


def _labels(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    return y, pred


def _metrics(recipe: str, classes: list[str], positive: str, n_folds: int, seed: int = 0) -> tuple[dict, dict]:
    """A metrics.json-like dict and the (y, pred) behind every entry, keyed (arm, evaluation)."""
    rng = np.random.default_rng(seed)
    raw: dict = {}
    arms: dict = {}
    for arm in ("stage1", "stage3c"):
        entry: dict = {"folds": {}, "vote": {}, "pooled_oof": None}
        for k in range(n_folds):
            y, pred = _labels(rng, 40 + k, len(classes))
            raw[(arm, f"Val{k + 1}")] = (y, pred)
            entry["folds"][str(k)] = {"info": {}, "oof": classification_report_table(y, pred, classes)}
        pooled = tuple(np.concatenate([raw[(arm, f"Val{k + 1}")][i] for k in range(n_folds)]) for i in (0, 1))
        raw[(arm, "out-of-fold (pooled)")] = pooled
        entry["pooled_oof"] = classification_report_table(*pooled, classes)
        y, pred = _labels(rng, 33, len(classes))
        raw[(arm, "test vote")] = (y, pred)
        entry["vote"]["test"] = classification_report_table(y, pred, classes)
        arms[arm] = entry
    metrics = {"recipe": recipe, "class_names": classes, "positive": positive, "n_folds": n_folds, "arms": arms,
               "image_level": False, "fold_mode": "subject", "grouping": "subject"}
    return metrics, raw


def _text(table) -> str:
    console = Console(record=True, width=250)
    console.print(table)
    return console.export_text()


def test_table2_rows_match_sklearn():
    """F1,N is the F1 of the non-positive class, F1,C of the positive one, per fold and on the vote."""
    metrics, raw = _metrics("leukonet_stage3c", ["hem", "all"], "all", n_folds=4)
    rows = table2_rows(metrics)
    assert [(r["arm"], r["evaluation"]) for r in rows] == [
        (a, e) for a in ("stage1", "stage3c") for e in ("Val1", "Val2", "Val3", "Val4", "test vote")]
    for r in rows:
        y, pred = raw[(r["arm"], r["evaluation"])]
        assert r["n"] == len(y)
        assert r["accuracy"] == pytest.approx(accuracy_score(y, pred))
        assert r["f1_normal"] == pytest.approx(f1_score(y, pred, pos_label=0))
        assert r["f1_cancer"] == pytest.approx(f1_score(y, pred, pos_label=1))


def test_table2_positive_decides_which_class_is_cancer():
    metrics, raw = _metrics("leukonet_stage1", ["all", "hem"], "all", n_folds=2)
    r = table2_rows(metrics)[0]
    y, pred = raw[(r["arm"], r["evaluation"])]
    assert r["f1_cancer"] == pytest.approx(f1_score(y, pred, pos_label=0))


def test_table2_renders_percentages():
    metrics, raw = _metrics("leukonet_stage3c", ["hem", "all"], "all", n_folds=4)
    text = _text(render_table2(metrics))
    for header in ("Val1", "Val4", "test vote", "F1,N", "F1,C", "stage3c"):
        assert header in text
    y, pred = raw[("stage3c", "Val2")]
    assert f"{100 * f1_score(y, pred, pos_label=0):.2f}" in text


def test_table2_needs_two_classes():
    metrics, _ = _metrics("leukonet_stage1", ["hem", "all", "aml"], "all", n_folds=2)
    with pytest.raises(ValueError, match="two classes"):
        table2_rows(metrics)


def test_table1_rows_match_sklearn():
    """Per class one-vs-rest TP/TN/FP/FN, precision, recall, specificity, F1; accuracy, macro and weighted F1."""
    classes = ["normal", "all", "aml"]
    metrics, raw = _metrics("leukemianet", classes, "aml", n_folds=3, seed=3)
    rows = table1_rows(metrics)
    evaluations = {(r["arm"], r["evaluation"]) for r in rows}
    assert evaluations == {(a, e) for a in ("stage1", "stage3c") for e in ("out-of-fold (pooled)", "test vote")}
    for arm, evaluation in evaluations:
        y, pred = raw[(arm, evaluation)]
        got = {(r["metric"], r["class"]): r["value"] for r in rows if (r["arm"], r["evaluation"]) == (arm, evaluation)}
        labels = list(range(3))
        cm = confusion_matrix(y, pred, labels=labels)
        for i, c in enumerate(classes):
            t, p = y == i, pred == i
            assert got[("tp", c)] == int((t & p).sum()) and got[("tn", c)] == int((~t & ~p).sum())
            assert got[("fp", c)] == int((~t & p).sum()) and got[("fn", c)] == int((t & ~p).sum())
            assert got[("specificity", c)] == pytest.approx((~t & ~p).sum() / (~t).sum())
        assert [got[("precision", c)] for c in classes] == pytest.approx(precision_score(y, pred, labels=labels, average=None))
        assert [got[("recall", c)] for c in classes] == pytest.approx(recall_score(y, pred, labels=labels, average=None))
        assert [got[("f1", c)] for c in classes] == pytest.approx(f1_score(y, pred, labels=labels, average=None))
        assert got[("accuracy", "")] == pytest.approx(accuracy_score(y, pred))
        assert got[("macro_f1", "")] == pytest.approx(f1_score(y, pred, average="macro"))
        assert got[("weighted_f1", "")] == pytest.approx(f1_score(y, pred, average="weighted"))
        matrix = [[r[p] for p in classes] for r in confusion_rows(metrics) if (r["arm"], r["evaluation"]) == (arm, evaluation)]
        assert matrix == cm.tolist()


def test_table1_renders_every_metric_block():
    metrics, raw = _metrics("leukemianet", ["normal", "all", "aml"], "aml", n_folds=3)
    text = _text(render_table1(metrics))
    for block in ("TP", "TN", "FP", "FN", "Accuracy", "Precision", "Recall (sensitivity)", "Specificity", "Macro F1", "Weighted F1"):
        assert block in text
    y, pred = raw[("stage1", "test vote")]
    assert f"{100 * accuracy_score(y, pred):.2f}" in text


@pytest.mark.parametrize("recipe, classes, expected", [
    ("leukonet_stage3c", ["hem", "all"], "LeukoNet Table 2"),
    ("leukonet_stage1", ["hem", "all", "aml"], "LeukemiaNet Table 1"),
    ("leukemianet", ["hem", "all", "aml"], "LeukemiaNet Table 1"),
    ("sdct_auxnet", ["hem", "all"], None),
])
def test_print_paper_tables_picks_the_layout_by_recipe(recipe, classes, expected):
    metrics, _ = _metrics(recipe, classes, "all", n_folds=2)
    console = Console(record=True, width=250)
    printed = print_paper_tables(metrics, console)
    text = console.export_text()
    assert printed == (expected is not None)
    if expected:
        assert expected in text
        assert ("confusion matrix" in text) == (expected == "LeukemiaNet Table 1")
    else:
        assert text == ""


def test_module_does_not_import_torch():
    code = "import sys, blastscope.reports.paper_tables, blastscope.reports.tables; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
