"""Trust on a real tiny run: which rows each choice read (temperature, conformal thresholds, patient
threshold, out-of-domain threshold), what is scored, and what the bundle and ``predict`` carry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TINY_RUN_OVERRIDES

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def trust_run(tiny_synthetic, tmp_path_factory) -> Path:
    from blastscope.config import resolve_config
    from blastscope.data.readers import read_dataset
    from blastscope.evaluation.aggregate import aggregate_run
    from blastscope.evaluation.cross_validation import run_cv

    run_dir = tmp_path_factory.mktemp("trust_run") / "run"
    config = resolve_config("sdct_auxnet", "quick", TINY_RUN_OVERRIDES + ["trust.calibration=validation"])
    run_cv(config, read_dataset(tiny_synthetic, layout="auto"), run_dir)
    aggregate_run(run_dir)
    return run_dir


def _preds(run_dir: Path, arm: str, k: int) -> pd.DataFrame:
    return pd.read_csv(run_dir / "arms" / arm / f"fold_{k + 1}" / "predictions.csv", keep_default_na=False,
                       dtype={"subject_id": str})


def test_calibration_cells_train_select_and_score_nothing(trust_run):
    folds = pd.read_csv(trust_run / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    calib = set(folds.loc[folds["split"] == "calib", "subject_id"])
    assert calib and (folds.loc[folds["split"] == "calib", "fold"] == -1).all()
    training = set(folds.loc[folds["fold"] >= 0, "subject_id"])
    assert not calib & training
    for k in range(3):
        p = _preds(trust_run, "sdct_net", k)
        assert set(p.loc[p["set"] == "calib", "subject_id"]) == calib
        assert not calib & set(p.loc[p["set"].isin(["oof", "select"]), "subject_id"])
    metrics = json.loads((trust_run / "metrics.json").read_text())
    for entry in metrics["arms"].values():
        assert "calib" not in entry["vote"] and all("calib" not in f for f in entry["folds"].values())
    scored = pd.read_csv(trust_run / "predictions.csv", keep_default_na=False)
    assert not scored["set"].isin(["calib", "select"]).any()


def test_temperature_reads_the_selection_cells_only(trust_run):
    from blastscope.evaluation.calibration import apply_temperature, fit_temperature

    for k in range(3):
        info = json.loads((trust_run / "arms" / "sdct_net" / f"fold_{k + 1}" / "fold.json").read_text())
        p = _preds(trust_run, "sdct_net", k)
        sel = p[p["set"] == "select"]
        expected = fit_temperature(sel[["p_hem", "p_all"]].to_numpy(), sel["y"].to_numpy())
        assert info["temperature"] == pytest.approx(expected, rel=1e-3) and info["temperature_on"] == "select"
        cal = apply_temperature(p[["p_hem", "p_all"]].to_numpy(), info["temperature"])
        np.testing.assert_allclose(p[["cal_p_hem", "cal_p_all"]].to_numpy(), cal, atol=1e-6)
        aux = json.loads((trust_run / "arms" / "sdct_auxnet" / f"fold_{k + 1}" / "fold.json").read_text())
        assert aux["temperature"] == info["temperature"] and aux["theta_on"] == "raw"


def test_conformal_thresholds_read_the_calibration_cells_only(trust_run):
    from blastscope.evaluation.conformal import class_scores, mondrian_thresholds

    metrics = json.loads((trust_run / "metrics.json").read_text())
    trust = metrics["arms"]["sdct_auxnet"]["trust"]
    for k in range(3):
        p = _preds(trust_run, "sdct_auxnet", k)
        c = p[p["set"] == "calib"]
        q = mondrian_thresholds(class_scores(c[["cal_p_hem", "cal_p_all"]].to_numpy(), c["y"].to_numpy(), 2), trust["alpha"])
        assert trust["conformal"]["fold_thresholds"][str(k)] == q.tolist()
    cells = trust["conformal"]["calibration_cells"]
    n_calib = int((pd.read_csv(trust_run / "folds.csv")["split"] == "calib").sum())
    assert sum(cells.values()) == n_calib
    assert 0 <= trust["conformal"]["oof"]["review_rate"] <= 1
    for key in ("oof",):
        assert set(trust["calibration"][key]) == {"raw", "calibrated"}


def test_patient_threshold_reads_the_selection_subjects(trust_run):
    from blastscope.evaluation.trust import _subject_fractions, choose_patient_threshold

    metrics = json.loads((trust_run / "metrics.json").read_text())
    folds = metrics["arms"]["sdct_net"]["trust"]["patient"]["folds"]
    for k in range(3):
        p = _preds(trust_run, "sdct_net", k)
        sel = p[p["set"] == "select"]
        subjects = _subject_fractions(sel, ["hem", "all"], "all", sel["out_of_domain"].astype(str).eq("True").to_numpy())
        expected = choose_patient_threshold(subjects["fraction_positive"].to_numpy(), subjects["positive_subject"].to_numpy())
        assert folds[str(k)]["choice"]["threshold"] == pytest.approx(expected["threshold"])
        assert folds[str(k)]["choice"]["on"] == "select"


def test_choose_patient_threshold():
    from blastscope.evaluation.trust import choose_patient_threshold

    got = choose_patient_threshold(np.array([0.1, 0.2, 0.7, 0.9]), np.array([False, False, True, True]))
    assert got["threshold"] == 0.5 and got["youden_j"] == 1.0  # of the separating thresholds, the closest to 0.5
    got = choose_patient_threshold(np.array([0.1, 0.55, 0.6, 0.9]), np.array([False, False, True, True]))
    assert got["threshold"] == pytest.approx(0.575) and got["youden_j"] == 1.0
    assert choose_patient_threshold(np.array([0.3, 0.4]), np.array([True, True]))["chosen"] is False


def test_bundle_and_predict_carry_the_trust(trust_run, tmp_path):
    from blastscope.evaluation.calibration import apply_temperature
    from blastscope.evaluation.conformal import mondrian_thresholds, prediction_sets
    from blastscope.inference.export import export_bundle
    from blastscope.inference.predictor import Predictor

    bundle = export_bundle(trust_run, tmp_path / "bundle")
    meta = json.loads((bundle / "bundle.json").read_text())
    trust = meta["trust"]
    infos = [json.loads((trust_run / "arms" / "sdct_net" / f"fold_{k + 1}" / "fold.json").read_text()) for k in range(3)]
    assert trust["temperatures"] == [i["temperature"] for i in infos]
    metrics = json.loads((trust_run / "metrics.json").read_text())["arms"]["sdct_auxnet"]["trust"]
    assert trust["conformal"]["scores"] == metrics["conformal"]["vote_scores"]
    assert trust["patient_threshold"] == metrics["patient"]["vote_choice"]["threshold"]
    assert all(f["ood"] for f in meta["folds"]) and trust["stain_range"] == "stain_range.safetensors"

    predictor = Predictor(bundle, alpha=0.2)
    held = pd.read_csv(trust_run / "folds.csv", keep_default_na=False)
    files = held.loc[held["split"] == "test", "path"].tolist() or held["path"].tolist()[:6]
    result = predictor.predict_files(files).cells
    images = np.stack([predictor.load(Path(f)) for f in files])
    r = predictor.predict_images(images)
    cal = np.stack([apply_temperature(r.fold_cnn_proba[i], t) if t else r.fold_cnn_proba[i]
                    for i, t in enumerate(trust["temperatures"])])
    cal = np.where((r.fold_source == "svm")[..., None], r.fold_proba, cal).mean(0)  # SVM cells keep Platt
    np.testing.assert_allclose(result[["p_hem", "p_all"]].to_numpy(), cal, atol=1e-9)
    sets = prediction_sets(cal, mondrian_thresholds([np.asarray(s) for s in trust["conformal"]["scores"]], 0.2))
    assert result["prediction_set"].tolist() == ["|".join(np.array(["hem", "all"])[s]) for s in sets]
    single = sets.sum(1) == 1
    agrees = np.array([s.sum() == 1 and ["hem", "all"][int(np.argmax(s))] == p for s, p in zip(sets, result["pred"])])
    expected_review = ~agrees | result["out_of_domain"].to_numpy(bool)
    assert result["review"].tolist() == expected_review.tolist()
    for reason, is_single, ood in zip(result["review_reason"], single, result["out_of_domain"]):
        if not is_single:
            assert "prediction set" in reason
        if ood:
            assert "out of domain" in reason


@pytest.mark.skipif(not (SHARED / "aml-cytomorphology-sample").is_dir(), reason="shared AML/PBC samples not found")
def test_out_of_domain_flags_other_cell_kinds_far_more_often(trust_run, tiny_synthetic, tmp_path, capsys):
    from blastscope.data.decode import IMAGE_SUFFIXES
    from blastscope.inference.export import export_bundle
    from blastscope.inference.predictor import Predictor

    predictor = Predictor(export_bundle(trust_run, tmp_path / "bundle"))
    # in-domain: the held-out test subjects' cells (unlabelled, so read by no step of the run) and the
    # calibration subjects' (which set no out-of-domain threshold)
    folds = pd.read_csv(trust_run / "folds.csv", keep_default_na=False)
    tests = sorted((tiny_synthetic / "testing_data").rglob("*.bmp"))
    in_domain = predictor.predict_files(tests + folds.loc[folds["split"] == "calib", "path"].tolist()).cells
    other = [p for d in ("aml-cytomorphology-sample", "pbc-sample") for p in sorted((SHARED / d).rglob("*"))
             if p.suffix.lower() in IMAGE_SUFFIXES]
    foreign = predictor.predict_files(other).cells
    rate_in, rate_out = in_domain["out_of_domain"].mean(), foreign["out_of_domain"].mean()
    with capsys.disabled():
        print(f"\nout-of-domain rate: held-out synthetic C-NMC-like cells {rate_in:.2f} ({len(in_domain)}), "
              f"AML + PBC samples {rate_out:.2f} ({len(foreign)})")
    assert rate_out >= max(0.15, 3 * rate_in)


@pytest.fixture(scope="module")
def calibrated_theta_run(tiny_synthetic, tmp_path_factory) -> Path:
    from blastscope.config import resolve_config
    from blastscope.data.readers import read_dataset
    from blastscope.evaluation.cross_validation import run_cv

    from dataclasses import replace

    run_dir = tmp_path_factory.mktemp("theta_on") / "run"
    config = resolve_config("sdct_auxnet", "quick", TINY_RUN_OVERRIDES)
    arms = tuple(a if a.aux is None else replace(a, aux=replace(a.aux, theta_on="calibrated")) for a in config.arms)
    config = replace(config, arms=arms)
    run_cv(config, read_dataset(tiny_synthetic, layout="auto"), run_dir)
    return run_dir


def test_theta_rule_on_calibrated_probabilities(calibrated_theta_run):
    """aux.theta_on: calibrated: the CNN answers where its temperature-scaled top probability exceeds theta."""
    from blastscope.evaluation.calibration import apply_temperature

    for k in range(3):
        info = json.loads((calibrated_theta_run / "arms" / "sdct_auxnet" / f"fold_{k + 1}" / "fold.json").read_text())
        assert info["theta_on"] == "calibrated"
        p = _preds(calibrated_theta_run, "sdct_auxnet", k)
        p = p[p["svm_pred"].astype(str) != ""]
        if p.empty:
            continue
        cal = apply_temperature(p[["cnn_p_hem", "cnn_p_all"]].to_numpy(), info["temperature"])
        expected = np.where(cal.max(axis=1) > info["theta"], "cnn", "svm")
        assert p["answered_by"].tolist() == expected.tolist()


def test_predict_explains_trust_in_its_json(trust_run, tmp_path):
    from click.testing import CliRunner

    from blastscope.cli import main
    from blastscope.inference.export import export_bundle

    bundle = export_bundle(trust_run, tmp_path / "bundle")
    folds = pd.read_csv(trust_run / "folds.csv", keep_default_na=False)
    files = folds.loc[folds["fold"] >= 0, "path"].tolist()[:6]
    r = CliRunner().invoke(main, ["predict", str(bundle), *files, "--out", str(tmp_path / "p.csv"), "--subject", "S1", "--alpha", "0.2"])
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "p.json").read_text())
    trust = out["trust"]
    assert trust["conformal"] and out["settings"]["alpha"] == 0.2 and "alpha 0.2" in trust["review_rule"]
    assert trust["temperatures"] == json.loads((bundle / "bundle.json").read_text())["trust"]["temperatures"]
    assert set(trust["stain"]) == {"S1"} and trust["stain"]["S1"]["outside"] is False  # the training cells themselves
    assert out["settings"]["threshold"] == json.loads((bundle / "bundle.json").read_text())["trust"]["patient_threshold"]
    cells = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert (cells["review"].astype(str) == "True").eq(cells["review_reason"] != "").all()
