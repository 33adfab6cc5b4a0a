"""End to end on real smear images: malignant (any of three ALL subtypes) vs benign as one positive set.

A small 4-class folder-per-class set is linked from the Taleqani smear set (6 images per class; no
subject ids, so image-level folds), then ``cv`` (spike_resnet, quick profile, one short epoch),
``report``, ``export`` and ``predict`` run through the CLI. The binary numbers are recomputed from
the run's own predictions.csv."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from blastscope.cli import main

CLASSES = ["benign", "early_malignant", "pre_malignant", "pro_malignant"]
MALIGNANT = CLASSES[1:]
NEG, POS = "negative (benign)", "positive (early_malignant, pre_malignant, pro_malignant)"
PER_CLASS = 6


@pytest.fixture(autouse=True)
def _one_thread():
    """Two OpenMP threads on a shared 2-core machine thrash; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def smear_run(shared, tmp_path_factory) -> dict:
    source = shared("all-smear-taleqani")
    root = tmp_path_factory.mktemp("positive_set")
    data = root / "data"
    for c in CLASSES:
        (data / c).mkdir(parents=True)
        for image in sorted((source / c).glob("*.jpg"))[:PER_CLASS]:
            (data / c / image.name).symlink_to(image)
    run = root / "run"
    text = _invoke(["cv", "spike_resnet", "--profile", "quick", "--data", data, "--grouping", "image", "--out", run,
                    "--set", f"data.classes=[{', '.join(CLASSES)}]",
                    "--set", "data.positive=[pro_malignant, pre_malignant, early_malignant]",
                    "--set", "train.epochs=1", "--set", "train.max_train_batches=2"])
    return {"data": data, "run": run, "text": text, "root": root}


def _loop_threshold(is_pos: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The largest score t whose rule score >= t catches at least ``target`` of the positives."""
    for t in sorted(set(scores[is_pos].tolist()), reverse=True):
        if np.mean(scores[is_pos] >= t) >= target:
            return t
    raise AssertionError("no threshold")


def test_run_records_and_scores_the_positive_set(smear_run) -> None:
    run = smear_run["run"]
    assert json.loads((run / "run.json").read_text())["positive"] == MALIGNANT
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["positive"] == MALIGNANT
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["positive"] == MALIGNANT and metrics["image_level"] is True
    entry = metrics["arms"]["spike_resnet"]
    assert list(entry["pooled_oof"]["per_class"]) == CLASSES  # the multi-class tables stay per class
    op = entry["operating_point"]
    assert op["positive"] == MALIGNANT and op["class_names"] == [NEG, POS]

    preds = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    val = preds[(preds["arm"] == "spike_resnet") & (preds["set"] == "oof")]
    assert len(val) == PER_CLASS * len(CLASSES)
    member = val["label"].isin(MALIGNANT).to_numpy()
    score = (val["p_early_malignant"] + val["p_pre_malignant"] + val["p_pro_malignant"]).to_numpy()
    assert op["pooled_oof"]["auc"]["auc"] == pytest.approx(roc_auc_score(member, score))
    assert op["pooled_oof"]["per_class"][POS]["support"] == int(member.sum())
    target = op["target_sensitivity"]
    assert op["chosen_on"] == "select"
    for k, g in val.groupby("fold"):
        # the threshold is chosen on the fold model's inner selection cells (training subjects) ...
        fold_preds = pd.read_csv(run / "arms" / "spike_resnet" / f"fold_{k + 1}" / "predictions.csv", keep_default_na=False)
        chooser = fold_preds[fold_preds["set"] == "select"]
        assert len(chooser) and not set(chooser["subject_id"]) & set(g["subject_id"])
        t = _loop_threshold(chooser["label"].isin(MALIGNANT).to_numpy(),
                            chooser[[f"p_{c}" for c in MALIGNANT]].sum(axis=1).to_numpy(), target)
        fold = op["folds"][str(k)]
        assert fold["threshold"] == pytest.approx(t)
        # ... and applied unchanged to the scored fold
        is_pos = g["label"].isin(MALIGNANT).to_numpy()
        s = g[[f"p_{c}" for c in MALIGNANT]].sum(axis=1).to_numpy()
        pc = fold["oof"]["per_class"][POS]
        assert (pc["tp"], pc["fn"], pc["fp"], pc["tn"]) == (
            int((is_pos & (s >= t)).sum()), int((is_pos & (s < t)).sum()),
            int((~is_pos & (s >= t)).sum()), int((~is_pos & (s < t)).sum()))


def test_cli_tables_show_the_positive_set(smear_run) -> None:
    text = " ".join(smear_run["text"].split())
    assert f"Binary question: {POS} against {NEG}" in text
    assert f"high-sensitivity operating point for '{POS}'" in text
    assert "ROC AUC positive set vs rest [DeLong 95% CI]" in text
    assert "IMAGE-LEVEL" in text


def test_report_shows_the_positive_set(smear_run) -> None:
    out = smear_run["root"] / "report"
    _invoke(["report", smear_run["run"], "--out", out, "--no-artefacts"])
    html = (out / "report.html").read_text()
    assert re.search(r"positive classes</t[dh]>\s*<td[^>]*>early_malignant, pre_malignant, pro_malignant \(any of them", html)
    assert "against: benign" in html and POS in html and NEG in html
    assert (out / "figures" / "roc_oof_positive_set.png").exists()


def test_bundle_and_predict_use_the_positive_set(smear_run) -> None:
    root, bundle = smear_run["root"], smear_run["root"] / "bundle"
    _invoke(["export", smear_run["run"], "--out", bundle])
    assert json.loads((bundle / "bundle.json").read_text())["positive"] == MALIGNANT
    files = [str(p) for c in CLASSES for p in sorted((smear_run["data"] / c).iterdir())[:2]]
    text = _invoke(["predict", bundle, *files, "--subject", "p1", "--out", root / "pred.csv"])
    assert "positive cells" in text and "any of 'early_malignant', 'pre_malignant', 'pro_malignant'" in " ".join(text.split())
    out = json.loads((root / "pred.json").read_text())
    assert out["bundle"]["positive"] == MALIGNANT
    cells = pd.read_csv(root / "pred.csv")
    (subject,) = out["subjects"]
    kept = cells[~cells["review"].astype(bool)]  # cells flagged for review are counted apart
    assert subject["cells"] == len(files) and subject["counted_cells"] == len(kept)
    assert subject["positive_cells"] == int(kept["pred"].isin(MALIGNANT).sum())


def test_bundle_with_a_bad_positive_set_is_refused(smear_run, tmp_path) -> None:
    import shutil

    from blastscope.inference.bundle import load_bundle
    from blastscope.inference.manifest import BundleError, write_manifest

    bundle = smear_run["root"] / "bundle"
    if not bundle.exists():
        _invoke(["export", smear_run["run"], "--out", bundle])
    for bad, match in ((CLASSES, "at least one class must stay negative"), (["early_malignant", "aml"], r"\['aml'\]")):
        copy = Path(shutil.copytree(bundle, tmp_path / f"b{len(bad)}"))
        meta = json.loads((copy / "bundle.json").read_text())
        meta["positive"] = bad
        (copy / "bundle.json").write_text(json.dumps(meta))
        write_manifest(copy)
        with pytest.raises(BundleError, match=f"bundle.json: bad positive .*{match}"):
            load_bundle(copy, backend="none")
