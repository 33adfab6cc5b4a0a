"""aggregate: per-class Wilson CIs / one-vs-rest DeLong AUCs, and the high-sensitivity operating point."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from blastscope.evaluation.aggregate import aggregate_run, summarise

TARGET = 0.9


def _frame(y: np.ndarray, proba: np.ndarray, classes: list[str], set_name: str = "oof", paths=None) -> pd.DataFrame:
    frame = pd.DataFrame({
        "set": set_name,
        "path": paths if paths is not None else [f"{set_name}/{i}.bmp" for i in range(len(y))],
        "subject_id": [f"s{i}" for i in range(len(y))],
        "label": [classes[c] for c in y],
        "y": y,
        "pred": proba.argmax(1),
    })
    for i, c in enumerate(classes):
        frame[f"p_{c}"] = proba[:, i]
    frame["answered_by"] = "cnn"
    return frame


def _proba(y: np.ndarray, k: int, rng: np.random.Generator, strength: float = 1.5) -> np.ndarray:
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += strength
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def _write_run(root: Path, classes: list[str], positive: str, folds: dict[int, pd.DataFrame]) -> Path:
    """A fake finished run folder (run.json + per-fold predictions.csv/fold.json) with hand-made predictions."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "run.json").write_text(json.dumps({
        "recipe": "spike_resnet", "paper": "", "class_names": classes, "positive": positive, "grouping": "subject",
        "fold_mode": "subject", "image_level": False, "n_folds": len(folds), "arms": ["spike_resnet"]}))
    for k, frame in folds.items():
        d = root / "arms" / "spike_resnet" / f"fold_{k + 1}"
        d.mkdir(parents=True)
        frame = frame.copy()
        frame.insert(0, "fold", k)
        frame.insert(0, "arm", "spike_resnet")
        frame.to_csv(d / "predictions.csv", index=False)
        (d / "fold.json").write_text(json.dumps({"arm": "spike_resnet", "fold": k}))
    return root


def _loop_threshold(is_pos: np.ndarray, scores: np.ndarray, target: float) -> float:
    """Straightforward search: the largest candidate score whose rule score >= t reaches the target sensitivity."""
    best = None
    for t in sorted(set(scores.tolist()), reverse=True):
        if np.mean(scores[is_pos] >= t) >= target:
            best = t
            break
    assert best is not None
    return best


def _counts(is_pos: np.ndarray, called: np.ndarray) -> dict:
    tp, fn = int((called & is_pos).sum()), int((~called & is_pos).sum())
    tn, fp = int((~called & ~is_pos).sum()), int((called & ~is_pos).sum())
    return {"tp": tp, "fn": fn, "tn": tn, "fp": fp}


@pytest.mark.parametrize("k", [2, 4])
def test_per_class_wilson_and_one_vs_rest_delong(k: int) -> None:
    """Per class one-vs-rest: Wilson CIs equal statsmodels', AUCs equal scikit-learn's (macro = sklearn ovr macro)."""
    rng = np.random.default_rng(k)
    classes = ["benign", "early_malignant", "pre_malignant", "pro_malignant"][:k]
    y = rng.integers(0, k, size=120)
    proba = _proba(y, k, rng)
    m = summarise(_frame(y, proba, classes), classes, classes[-1])
    pred = proba.argmax(1)
    for i, name in enumerate(classes):
        ci = m["per_class_ci"][name]
        member = y == i
        sens_k, spec_k = int(((pred == i) & member).sum()), int(((pred != i) & ~member).sum())
        assert (ci["sensitivity"]["k"], ci["sensitivity"]["n"]) == (sens_k, int(member.sum()))
        np.testing.assert_allclose([ci["sensitivity"]["low"], ci["sensitivity"]["high"]],
                                   proportion_confint(sens_k, int(member.sum()), method="wilson"), atol=1e-12)
        np.testing.assert_allclose([ci["specificity"]["low"], ci["specificity"]["high"]],
                                   proportion_confint(spec_k, int((~member).sum()), method="wilson"), atol=1e-12)
        assert ci["auc"]["auc"] == pytest.approx(roc_auc_score(member, proba[:, i]))
        assert ci["auc"]["low"] <= ci["auc"]["auc"] <= ci["auc"]["high"]
    if k > 2:
        assert m["macro_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    else:
        assert m["auc"]["auc"] == pytest.approx(m["per_class_ci"][classes[-1]]["auc"]["auc"])


def test_absent_class_has_no_auc() -> None:
    classes = ["a", "b", "c"]
    y = np.array([0, 1, 0, 1, 0, 1])
    m = summarise(_frame(y, _proba(y, 3, np.random.default_rng(0)), classes), classes, "b")
    assert m["per_class_ci"]["c"]["auc"] is None and m["macro_auc"] is None
    assert m["per_class_ci"]["c"]["sensitivity"]["n"] == 0


def test_operating_point_chosen_on_val_applied_unchanged_to_held_out(tmp_path) -> None:
    """Invariant: each fold's threshold is a function of its own 'oof' predictions only and is applied
    unchanged to its held-out predictions; the vote thresholds the mean probability at the threshold
    of the pooled out-of-fold predictions. Held-out scores are shrunk so the held-out sensitivity
    falls BELOW the target: a threshold re-chosen on held-out data would reach it."""
    rng = np.random.default_rng(7)
    classes, positive = ["hem", "all"], "all"
    test_y = rng.integers(0, 2, size=40)
    test_paths = [f"test/{i}.bmp" for i in range(40)]
    folds, expected = {}, {}
    for k in range(3):
        val_y = rng.integers(0, 2, size=30)
        val_y[:3] = 1
        val_p = _proba(val_y, 2, rng)
        test_p = _proba(test_y, 2, rng)
        test_p[:, 1] *= 0.6  # held-out probabilities of 'all' are systematically lower
        test_p[:, 0] = 1 - test_p[:, 1]
        val_paths = [f"val{k}/{i}.bmp" for i in range(30)]
        folds[k] = pd.concat([_frame(val_y, val_p, classes, "oof", val_paths), _frame(test_y, test_p, classes, "test", test_paths)],
                             ignore_index=True)
        t = _loop_threshold(val_y == 1, val_p[:, 1], TARGET)
        expected[k] = (t, _counts(test_y == 1, test_p[:, 1] >= t), test_p[:, 1])
    metrics = aggregate_run(_write_run(tmp_path / "run", classes, positive, folds), sensitivity_target=TARGET)
    op = metrics["arms"]["spike_resnet"]["operating_point"]
    assert op["target_sensitivity"] == TARGET and op["class_names"] == classes
    for k, (t, counts, _) in expected.items():
        fold = op["folds"][str(k)]
        assert fold["threshold"] == pytest.approx(t)
        pc = fold["test"]["per_class"]["all"]
        assert {key: pc[key] for key in counts} == counts
        assert fold["test"]["sensitivity_ci"]["value"] == pytest.approx(counts["tp"] / (counts["tp"] + counts["fn"]))
        assert fold["oof"]["per_class"]["all"]["sensitivity"] >= TARGET  # chosen there
    assert min(op["folds"][str(k)]["test"]["per_class"]["all"]["sensitivity"] for k in expected) < TARGET
    # the vote: one threshold from the pooled out-of-fold predictions, applied to the mean probability
    pooled = pd.concat([f[f["set"] == "oof"] for f in folds.values()])
    t_vote = _loop_threshold(pooled["y"].to_numpy() == 1, pooled["p_all"].to_numpy(), TARGET)
    assert op["vote_threshold"] == pytest.approx(t_vote)
    assert op["mean_fold_threshold"] == pytest.approx(np.mean([e[0] for e in expected.values()]))
    mean_p = np.mean([e[2] for e in expected.values()], axis=0)
    vote_counts = _counts(test_y == 1, mean_p >= t_vote)
    pc = op["vote"]["test"]["per_class"]["all"]
    assert {key: pc[key] for key in vote_counts} == vote_counts
    low, high = proportion_confint(vote_counts["tp"], int((test_y == 1).sum()), method="wilson")
    assert op["vote"]["test"]["sensitivity_ci"]["low"] == pytest.approx(low)
    assert op["vote"]["test"]["sensitivity_ci"]["high"] == pytest.approx(high)
    # AUC does not depend on the threshold: it is the argmax table's AUC
    assert op["vote"]["test"]["auc"]["auc"] == pytest.approx(metrics["arms"]["spike_resnet"]["vote"]["test"]["auc"]["auc"])


def test_multiclass_operating_point_is_positive_against_rest(tmp_path) -> None:
    """With four classes the operating point decides '<positive>' against 'not <positive>'."""
    rng = np.random.default_rng(3)
    classes, positive = ["benign", "early_malignant", "pre_malignant", "pro_malignant"], "early_malignant"
    folds, thresholds = {}, {}
    for k in range(2):
        y = rng.integers(0, 4, size=40)
        y[:2] = 1
        p = _proba(y, 4, rng)
        folds[k] = _frame(y, p, classes, "oof", [f"v{k}/{i}" for i in range(40)])
        thresholds[k] = (_loop_threshold(y == 1, p[:, 1], TARGET), y == 1, p[:, 1])
    metrics = aggregate_run(_write_run(tmp_path / "run", classes, positive, folds), sensitivity_target=TARGET)
    op = metrics["arms"]["spike_resnet"]["operating_point"]
    assert op["class_names"] == ["not early_malignant", "early_malignant"]
    assert op["vote"] == {}  # no held-out set
    tp = fp = 0
    for k, (t, is_pos, s) in thresholds.items():
        assert op["folds"][str(k)]["threshold"] == pytest.approx(t)
        tp, fp = tp + int(((s >= t) & is_pos).sum()), fp + int(((s >= t) & ~is_pos).sum())
    pooled = op["pooled_oof"]["per_class"]["early_malignant"]
    assert (pooled["tp"], pooled["fp"]) == (tp, fp)
    assert pooled["support"] == sum(int(v[1].sum()) for v in thresholds.values())
