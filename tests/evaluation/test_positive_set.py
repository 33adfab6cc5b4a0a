"""A SET of positive classes (``data.positive`` a list): summed score, binary names, AUC with DeLong CI
and the high-sensitivity operating point of "any of them" against the rest."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from blastscope.evaluation.aggregate import aggregate_run
from blastscope.evaluation.operating_point import (
    binary_names,
    binary_positive,
    is_positive,
    normalize_positive,
    positive_score,
)

CLASSES = ["benign", "early_malignant", "pre_malignant", "pro_malignant"]
MALIGNANT = ["early_malignant", "pre_malignant", "pro_malignant"]
NEG, POS = "negative (benign)", "positive (early_malignant, pre_malignant, pro_malignant)"


# ------------------------------------------------------------------------------------ helpers
def _frame(y: np.ndarray, proba: np.ndarray, set_name: str, paths: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"set": set_name, "path": paths, "subject_id": paths, "label": [CLASSES[c] for c in y],
                          "y": y, "pred": proba.argmax(1)})
    for i, c in enumerate(CLASSES):
        frame[f"p_{c}"] = proba[:, i]
    frame["answered_by"] = "cnn"
    return frame


def _write_run(root: Path, positive, folds: dict[int, pd.DataFrame]) -> Path:
    """A fake finished run folder (run.json + per-fold predictions.csv/fold.json)."""
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({
        "recipe": "spike_resnet", "paper": "", "class_names": CLASSES, "positive": positive, "grouping": "image",
        "fold_mode": "image", "image_level": True, "n_folds": len(folds), "arms": ["arm"]}))
    for k, frame in folds.items():
        d = root / "arms" / "arm" / f"fold_{k + 1}"
        d.mkdir(parents=True)
        frame.assign(arm="arm", fold=k).to_csv(d / "predictions.csv", index=False)
        (d / "fold.json").write_text(json.dumps({"fold": k}))
    return root


def _proba(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(len(y), len(CLASSES)))
    logits[np.arange(len(y)), y] += 1.2
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def _delong_loop(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) AUC and variance by the plain O(m n) placement-value loop."""
    pos, neg = s[y == 1], s[y == 0]
    psi = np.array([[1.0 if p > q else 0.5 if p == q else 0.0 for q in neg] for p in pos])
    v10, v01 = psi.mean(1), psi.mean(0)
    return float(psi.mean()), float(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))


# ------------------------------------------------------------------------------------ names
def test_names_of_the_binary_question() -> None:
    assert binary_names(CLASSES, MALIGNANT) == [NEG, POS]
    assert binary_names(CLASSES, ["pro_malignant", "early_malignant"]) == [
        "negative (benign, pre_malignant)", "positive (early_malignant, pro_malignant)"]
    assert binary_positive(CLASSES, MALIGNANT) == POS
    # a single class keeps today's names
    assert binary_names(CLASSES, "early_malignant") == ["not early_malignant", "early_malignant"]
    assert binary_names(CLASSES, ["early_malignant"]) == ["not early_malignant", "early_malignant"]
    assert binary_names(["hem", "all"], "all") == ["hem", "all"] and binary_positive(["hem", "all"], "hem") == "hem"


@pytest.mark.parametrize("positive,match", [
    ("aml", "got 'aml'"), (["early_malignant", "aml"], r"\['aml'\]"), (["pre_malignant", "pre_malignant"], "more than once"),
    (CLASSES, "at least one class must stay negative"), ([], "non-empty"), (3, "got 3"),
])
def test_bad_positive_is_refused(positive, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        normalize_positive(CLASSES, positive)


def test_normalised_positive_is_in_class_order() -> None:
    assert normalize_positive(CLASSES, ["pro_malignant", "early_malignant"]) == ["early_malignant", "pro_malignant"]
    assert normalize_positive(CLASSES, ["pre_malignant"]) == "pre_malignant"


# ------------------------------------------------------------------------------------ score
def test_summed_score_is_the_sum_of_the_p_columns() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=50)
    frame = _frame(y, _proba(y, rng), "oof", [f"v{i}" for i in range(50)])
    expected = frame["p_early_malignant"] + frame["p_pre_malignant"] + frame["p_pro_malignant"]
    np.testing.assert_allclose(positive_score(frame, CLASSES, MALIGNANT), expected.to_numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(positive_score(frame, CLASSES, MALIGNANT), 1.0 - frame["p_benign"].to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(positive_score(frame, CLASSES, "pre_malignant"), frame["p_pre_malignant"].to_numpy())
    np.testing.assert_array_equal(is_positive(y, CLASSES, MALIGNANT), y != 0)
    np.testing.assert_array_equal(is_positive(y, CLASSES, ["early_malignant", "pro_malignant"]), np.isin(y, [1, 3]))


# ------------------------------------------------------------------------------------ AUC
def test_auc_of_the_set_equals_scikit_learn_and_a_delong_loop(tmp_path) -> None:
    """Per fold, pooled out-of-fold and for the vote on a held-out set: AUC (with DeLong CI) of
    'label in the set' against the summed probability of the set."""
    rng = np.random.default_rng(5)
    test_y = rng.integers(0, 4, size=30)
    folds, test_probas = {}, []
    for k in range(3):
        val_y = rng.integers(0, 4, size=40)
        val_p, test_p = _proba(val_y, rng), _proba(test_y, rng)
        test_probas.append(test_p)
        folds[k] = pd.concat([_frame(val_y, val_p, "oof", [f"v{k}_{i}" for i in range(40)]),
                              _frame(test_y, test_p, "test", [f"t{i}" for i in range(30)])], ignore_index=True)
    positive = ["pre_malignant", "early_malignant"]  # written out of class order on purpose
    metrics = aggregate_run(_write_run(tmp_path / "run", positive, folds), sensitivity_target=0.9)
    assert metrics["positive"] == ["early_malignant", "pre_malignant"]
    op = metrics["arms"]["arm"]["operating_point"]
    assert op["class_names"] == ["negative (benign, pro_malignant)", "positive (early_malignant, pre_malignant)"]
    z = norm.ppf(0.975)

    def check(m: dict, y: np.ndarray, proba: np.ndarray) -> None:
        member, score = np.isin(y, [1, 2]), proba[:, 1] + proba[:, 2]
        auc = m["auc"]
        assert auc["auc"] == pytest.approx(roc_auc_score(member, score), abs=1e-12)
        loop_auc, loop_var = _delong_loop(member.astype(int), score)
        assert auc["auc"] == pytest.approx(loop_auc, abs=1e-12) and auc["variance"] == pytest.approx(loop_var, rel=1e-9)
        half = z * loop_var ** 0.5  # normal interval, clipped to [0, 1]
        assert (auc["low"], auc["high"]) == pytest.approx((max(0.0, loop_auc - half), min(1.0, loop_auc + half)))
        # the positive row of the binary table carries the same AUC
        assert m["per_class_ci"][op["class_names"][1]]["auc"]["auc"] == pytest.approx(auc["auc"])

    pooled = []
    for k, f in folds.items():
        val = f[f["set"] == "oof"]
        cols = [f"p_{c}" for c in CLASSES]
        check(op["folds"][str(k)]["oof"], val["y"].to_numpy(), val[cols].to_numpy())
        pooled.append(val)
    pooled = pd.concat(pooled)
    check(op["pooled_oof"], pooled["y"].to_numpy(), pooled[[f"p_{c}" for c in CLASSES]].to_numpy())
    check(op["vote"]["test"], test_y, np.mean(test_probas, axis=0))
    # the multi-class tables stay per class
    assert list(metrics["arms"]["arm"]["pooled_oof"]["per_class"]) == CLASSES


# ------------------------------------------------------------------------------------ operating point
VAL = [  # (class, p_benign, p_early, p_pre, p_pro); summed malignant score in the comment
    (0, 0.70, 0.10, 0.10, 0.10),  # 0.30
    (0, 0.45, 0.05, 0.25, 0.25),  # 0.55
    (1, 0.40, 0.20, 0.20, 0.20),  # 0.60  (argmax says benign)
    (2, 0.10, 0.10, 0.70, 0.10),  # 0.90
    (3, 0.20, 0.00, 0.00, 0.80),  # 0.80
    (3, 0.05, 0.05, 0.05, 0.85),  # 0.95
]
TEST = [
    (0, 0.15, 0.30, 0.30, 0.25),  # 0.85 -> called malignant: false positive
    (1, 0.25, 0.25, 0.25, 0.25),  # 0.75 -> missed: false negative
    (2, 0.10, 0.30, 0.30, 0.30),  # 0.90 -> true positive
    (0, 0.90, 0.05, 0.03, 0.02),  # 0.10 -> true negative
]


def _hand_frame(rows, set_name: str) -> pd.DataFrame:
    a = np.array(rows)
    return _frame(a[:, 0].astype(int), a[:, 1:], set_name, [f"{set_name}{i}" for i in range(len(rows))])


def test_operating_point_on_a_hand_built_frame(tmp_path) -> None:
    """Target 0.75 over the 4 malignant val cells (sums 0.95, 0.90, 0.80, 0.60): the threshold is the
    3rd largest, 0.80; applied unchanged to the test cells it gives TP 1, FN 1, FP 1, TN 1."""
    frame = pd.concat([_hand_frame(VAL, "oof"), _hand_frame(TEST, "test")], ignore_index=True)
    metrics = aggregate_run(_write_run(tmp_path / "run", MALIGNANT, {0: frame}), sensitivity_target=0.75)
    assert metrics["positive"] == MALIGNANT
    op = metrics["arms"]["arm"]["operating_point"]
    assert op["positive"] == MALIGNANT and op["class_names"] == [NEG, POS]
    fold = op["folds"]["0"]
    assert fold["threshold"] == pytest.approx(0.80)
    val = fold["oof"]["per_class"][POS]
    assert (val["tp"], val["fn"], val["fp"], val["tn"]) == (3, 1, 0, 2)
    assert fold["oof"]["sensitivity_ci"]["value"] == pytest.approx(0.75)
    assert fold["oof"]["specificity_ci"]["value"] == 1.0
    test = fold["test"]["per_class"][POS]
    assert (test["tp"], test["fn"], test["fp"], test["tn"]) == (1, 1, 1, 1)
    assert fold["test"]["auc"]["auc"] == pytest.approx(0.75)  # positives {0.75, 0.90} vs negatives {0.85, 0.10}: 3 of 4 pairs
    assert fold["test"]["positive"] == POS
    # one fold: the vote's threshold is chosen on the same val cells and gives the same counts
    assert op["vote_threshold"] == pytest.approx(0.80)
    vote = op["vote"]["test"]["per_class"][POS]
    assert (vote["tp"], vote["fn"], vote["fp"], vote["tn"]) == (1, 1, 1, 1)
    # the argmax table is still per class: the early cell with p_benign 0.40 is called benign there
    argmax = metrics["arms"]["arm"]["folds"]["0"]["oof"]["per_class"]
    assert argmax["early_malignant"]["fn"] == 1 and argmax["benign"]["fp"] == 1


def test_single_positive_in_a_list_of_one_is_todays_single_class(tmp_path) -> None:
    """Invariant: ``positive: [early_malignant]`` gives the same metrics as ``positive: early_malignant``."""
    frame = pd.concat([_hand_frame(VAL, "oof"), _hand_frame(TEST, "test")], ignore_index=True)
    one = aggregate_run(_write_run(tmp_path / "a", ["early_malignant"], {0: frame}), sensitivity_target=0.75)
    name = aggregate_run(_write_run(tmp_path / "b", "early_malignant", {0: frame}), sensitivity_target=0.75)
    assert json.dumps(one, sort_keys=True) == json.dumps(name, sort_keys=True)  # (NaN != NaN as dicts)
    assert name["positive"] == "early_malignant"
    assert name["arms"]["arm"]["operating_point"]["class_names"] == ["not early_malignant", "early_malignant"]
