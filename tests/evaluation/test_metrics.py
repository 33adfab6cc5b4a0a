import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from blastscope.evaluation.metrics import binary_summary, classification_report_table


def _random_labels(seed: int, k: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    flip = rng.random(n) < 0.3
    y_pred = np.where(flip, rng.integers(0, k, n), y_true)
    return y_true, y_pred


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn(k: int, seed: int) -> None:
    y_true, y_pred = _random_labels(seed, k)
    names = [f"c{i}" for i in range(k)]
    table = classification_report_table(y_true, y_pred, names)
    labels = list(range(k))
    precision = precision_score(y_true, y_pred, labels=labels, average=None)
    recall = recall_score(y_true, y_pred, labels=labels, average=None)
    f1 = f1_score(y_true, y_pred, labels=labels, average=None)
    for i, name in enumerate(names):
        row = table["per_class"][name]
        assert row["precision"] == pytest.approx(precision[i], abs=1e-12)
        assert row["recall"] == pytest.approx(recall[i], abs=1e-12)
        assert row["sensitivity"] == row["recall"]
        assert row["f1"] == pytest.approx(f1[i], abs=1e-12)
        assert row["support"] == int(np.sum(y_true == i))
    assert table["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert table["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert table["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert table["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert table["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert table["n_samples"] == len(y_true)


@pytest.mark.parametrize("k", [2, 3])
def test_one_vs_rest_counts_and_specificity_by_loop(k: int) -> None:
    y_true, y_pred = _random_labels(7, k)
    table = classification_report_table(y_true, y_pred, [str(i) for i in range(k)])
    for c in range(k):
        row = table["per_class"][str(c)]
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        tn = sum(1 for t, p in zip(y_true, y_pred) if t != c and p != c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        assert (row["tp"], row["tn"], row["fp"], row["fn"]) == (tp, tn, fp, fn)
        assert row["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-12)
    specs = [table["per_class"][str(c)]["specificity"] for c in range(k)]
    assert table["macro"]["specificity"] == pytest.approx(np.mean(specs))


def test_weighted_f1_is_paper_eq8_and_bac_is_eq9() -> None:
    """Eq. 8: WF1 = sum_j n(c_j) F1(c_j) / N; eq. 9: BAC = (recall + specificity) / 2 (binary)."""
    y_true, y_pred = _random_labels(3, 2, n=301)
    table = classification_report_table(y_true, y_pred, ["normal", "cancer"])
    rows = table["per_class"]
    wf1 = sum(rows[c]["support"] * rows[c]["f1"] for c in rows) / table["n_samples"]
    assert table["weighted_f1"] == pytest.approx(wf1, abs=1e-12)
    bac = (rows["cancer"]["recall"] + rows["cancer"]["specificity"]) / 2
    assert table["balanced_accuracy"] == pytest.approx(bac, abs=1e-12)


def test_zero_division_gives_zero_without_warnings() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0])  # class 1 never predicted, class 2 absent everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = classification_report_table(y_true, y_pred, ["a", "b", "c"])
        all_one = classification_report_table(np.zeros(3, int), np.zeros(3, int), ["a", "b"])
    assert table["per_class"]["b"]["precision"] == 0.0
    assert table["per_class"]["b"]["f1"] == 0.0
    assert table["per_class"]["c"]["recall"] == 0.0
    assert table["per_class"]["c"]["specificity"] == 1.0
    assert all_one["per_class"]["a"]["specificity"] == 0.0  # no negatives: 0/0 -> 0.0


def test_result_is_json_ready() -> None:
    y_true, y_pred = _random_labels(4, 3)
    table = classification_report_table(y_true, y_pred, ["ALL", "AML", "normal"])
    assert json.loads(json.dumps(table)) == table


@pytest.mark.parametrize(
    "y_true, y_pred, names, match",
    [
        ([0, 1], [0, 2], ["a", "b"], "y_pred must lie in"),
        ([0, 1, 1], [0, 1], ["a", "b"], "same length"),
        ([0, 1], [0, 1], ["a", "a"], "distinct"),
        ([0, 0], [0, 0], ["a"], "at least 2"),
        ([], [], ["a", "b"], "empty"),
        ([0.0, 1.0], [0, 1], ["a", "b"], "integer"),
    ],
)
def test_invalid_inputs_raise(y_true, y_pred, names, match) -> None:
    with pytest.raises(ValueError, match=match):
        classification_report_table(np.asarray(y_true), np.asarray(y_pred), names)


def test_binary_summary_matches_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 2, 150)
    proba = np.clip(0.35 * y_true + rng.random(150) * 0.65, 0, 1)
    y_pred = (proba > 0.5).astype(int)
    out = binary_summary(y_true, y_pred, proba)
    assert out["f1_positive"] == pytest.approx(f1_score(y_true, y_pred, pos_label=1))
    assert out["f1_negative"] == pytest.approx(f1_score(y_true, y_pred, pos_label=0))
    assert out["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert out["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert out["sensitivity"] == pytest.approx(recall_score(y_true, y_pred))
    assert out["specificity"] == pytest.approx(recall_score(y_true, y_pred, pos_label=0))
    assert out["auc"] == pytest.approx(roc_auc_score(y_true, proba))


def test_binary_summary_auc_none_without_proba_or_with_one_class() -> None:
    assert binary_summary([0, 1, 1], [0, 1, 0])["auc"] is None
    assert binary_summary([1, 1, 1], [0, 1, 1], [0.2, 0.9, 0.8])["auc"] is None


def test_binary_summary_rejects_non_probabilities() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        binary_summary([0, 1], [0, 1], [-2.0, 3.0])
    with pytest.raises(ValueError, match="shape"):
        binary_summary([0, 1], [0, 1], [0.1, 0.2, 0.3])
