"""``export_bundle``: pack one arm of a finished run folder into a bundle directory.

Reads only the run folder's files (``run.json``, ``config.yaml``, per fold ``best.safetensors``,
``svm.safetensors``, ``input.safetensors``, ``fold.json``); the layout written is described in
:mod:`blastscope.inference.bundle`. Weights and arrays are copied byte for byte.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from blastscope import __version__
from blastscope.config import ArmConfig, RunConfig, read_config
from blastscope.data.preprocess import Preprocess
from blastscope.engine.arm_models import model_spec
from blastscope.engine.atomic import DISK_FULL, writing_error
from blastscope.inference.bundle import (
    BUNDLE_FILE,
    FORMAT,
    SCHEMA_VERSION,
    Bundle,
    BundleError,
    FoldFiles,
    load_bundle,
    read_arrays,
    read_ood,
    read_svm,
)
from blastscope.inference.manifest import write_manifest
from blastscope.inference.model_card import model_card
from blastscope.run_layout import fold_dir

__all__ = ["export_bundle"]

logger = logging.getLogger(__name__)


def _resolve_arm(config: RunConfig, arm: str | None) -> ArmConfig:
    names = [a.name for a in config.arms]
    name = arm or names[-1]
    if name not in names:
        raise BundleError(f"the run has no arm {name!r}; arms: {', '.join(names)}")
    return config.arms[names.index(name)]


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise BundleError(f"{out}: already exists; choose a new --out (or pass overwrite=True for an old bundle)")
    if not out.is_dir() or (any(out.iterdir()) and not (out / BUNDLE_FILE).exists()):
        raise BundleError(f"{out}: exists and is not a bundle; refusing to replace it")


def export_bundle(run_dir: Path | str, out: Path | str, arm: str | None = None, onnx: bool = False,
                  overwrite: bool = False, int8: bool = False) -> Path:
    """Pack ``arm`` (default: the recipe's last arm) of a finished run into the bundle ``out``.

    The bundle is assembled in a temporary sibling directory, loaded once with every check
    (manifest, schema, tensor shapes; ONNX sessions when ``onnx``) and only then renamed into
    place, so ``out`` is either absent or complete.

    ``int8`` also writes PyTorch int8 parameters (and, with ``onnx``, int8 graphs), calibrated on each
    fold model's own training cells and accepted only if they agree with float32 on its out-of-fold
    cells (:func:`_write_int8`); the verdicts, the checks and the calibration cells are in
    ``bundle.json`` (``int8``, ``onnx.int8``) either way.

    Raises:
        BundleError: unknown arm, an unfinished fold, ``out`` already exists.
    """
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / "run.json").exists():
        raise BundleError(f"{run_dir}: not a run folder (no run.json)")
    run = json.loads((run_dir / "run.json").read_text())
    config = read_config(run_dir / "config.yaml")
    arm_cfg = _resolve_arm(config, arm)
    spec = model_spec(config, arm_cfg)
    _check_out(out, overwrite)
    folds, copies = [], []
    for k in range(int(run["n_folds"])):
        arm_dir, cnn_dir = fold_dir(run_dir, arm_cfg.name, k), fold_dir(run_dir, spec["arm"], k)
        if not (arm_dir / "fold.json").exists() or not (cnn_dir / "best.safetensors").exists():
            raise BundleError(f"{arm_dir}: fold {k + 1} of arm {arm_cfg.name!r} is not finished; finish the run first")
        n = k + 1
        files: dict[str, Any] = {"fold": n, "weights": f"model_fold{n}.safetensors"}
        copies.append((cnn_dir / "best.safetensors", files["weights"]))
        if arm_cfg.aux is not None and (arm_dir / "svm.safetensors").exists():
            files["svm"] = f"svm_fold{n}.safetensors"
            copies.append((arm_dir / "svm.safetensors", files["svm"]))
        elif arm_cfg.aux is not None:
            logger.warning("fold %d has no SVM (the run fell back to the CNN alone); so does the bundle", n)
        if (cnn_dir / "input.safetensors").exists():
            files["input"] = f"input_fold{n}.safetensors"
            copies.append((cnn_dir / "input.safetensors", files["input"]))
        if onnx:
            files["onnx"] = f"model_fold{n}.onnx"
        if (cnn_dir / "ood.safetensors").exists():
            files["ood"] = f"ood_fold{n}.safetensors"
            copies.append((cnn_dir / "ood.safetensors", files["ood"]))
        folds.append(FoldFiles(**files))
    meta = _metadata(run, config, arm_cfg, spec, folds, onnx)
    if arm_cfg.aux is not None:  # the theta each fold model uses (chosen per fold with aux.theta: auto)
        infos = [json.loads((fold_dir(run_dir, arm_cfg.name, k) / "fold.json").read_text())
                 for k in range(int(run["n_folds"]))]
        meta["fold_thetas"] = [i.get("theta", arm_cfg.aux.theta) for i in infos]
        meta["fold_svm"] = [{key: i.get(key) for key in ("svm_C", "svm_gamma", "svm_standardize", "svm_search", "theta_search",
                                                         "platt_a", "aux_fallback")} for i in infos]
    meta["model_card"] = model_card(run_dir, arm_cfg.name)
    meta["trust"] = _trust(run_dir, run, config, arm_cfg, spec)
    if (run_dir / STAIN_FILE).exists():
        meta["trust"]["stain_range"] = STAIN_FILE
        copies.append((run_dir / STAIN_FILE, STAIN_FILE))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        for src, name in copies:
            shutil.copyfile(src, tmp / name)
        if onnx:
            meta["onnx"]["graph_input"] = _write_onnx(tmp, meta, folds)
        if int8:
            _write_int8(tmp, meta, folds, run_dir, onnx)
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp)
        _readable(tmp)
        load_bundle(tmp, backend="onnx" if onnx else "torch")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno in DISK_FULL:  # copyfile names its source; the disk that is full is the bundle's
            raise writing_error(e, out) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("bundle of arm %s (%d folds) written to %s", arm_cfg.name, len(folds), out)
    return out


STAIN_FILE = "stain_range.safetensors"


def _trust(run_dir: Path, run: dict, config: RunConfig, arm: ArmConfig, spec: dict) -> dict:
    """bundle.json ``trust``: each fold CNN's temperature, where the theta rule reads, the vote's
    conformal calibration scores (the run's calibration cells, ``trust.calibration``) and the patient
    threshold chosen on training subjects (:mod:`blastscope.evaluation.trust`)."""
    from blastscope.evaluation.aggregate import load_predictions
    from blastscope.evaluation.operating_point import normalize_positive
    from blastscope.evaluation.trust import arm_trust

    n = int(run["n_folds"])
    cnn_infos = [json.loads((fold_dir(run_dir, spec["arm"], k) / "fold.json").read_text()) for k in range(n)]
    infos = {k: json.loads((fold_dir(run_dir, arm.name, k) / "fold.json").read_text()) for k in range(n)}
    preds = load_predictions(run_dir)
    classes = list(config.data.classes)
    summary = arm_trust(preds[preds["arm"] == arm.name], classes, normalize_positive(classes, config.data.positive), infos,
                        alpha=config.trust.alpha, patient_threshold=config.trust.patient_threshold)
    out: dict = {"temperatures": [i.get("temperature") for i in cnn_infos],
                 "theta_on": infos[0].get("theta_on", "raw") if arm.aux is not None else "raw",
                 "conformal": None, "patient_threshold": None, "ood_quantile": config.trust.ood_quantile}
    if summary is None:
        return out
    if summary.get("patient", {}).get("vote_choice"):
        out["patient_threshold"] = summary["patient"]["vote_choice"]["threshold"]
        out["patient_threshold_on"] = "out-of-fold subjects (training subjects of the bundle's fold models)"
    conformal = summary.get("conformal")
    if conformal is not None:
        out["conformal"] = {"scores": conformal["vote_scores"], "alpha": config.trust.alpha,
                            "cells": conformal["calibration_cells"], "subjects": conformal["calibration_subjects"],
                            "calibration": config.trust.calibration}
    return out


def _readable(root: Path) -> None:
    """mkdtemp/atomic writes create owner-only modes; a bundle is meant to be shared (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    root.chmod(0o777 & ~umask)
    for p in root.iterdir():
        p.chmod(0o666 & ~umask)


def _metadata(run: dict, config: RunConfig, arm: ArmConfig, spec: dict, folds: list[FoldFiles], onnx: bool) -> dict:
    cnn_arm = next(a for a in config.arms if a.name == spec["arm"])
    data = config.data
    return {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": config.recipe, "paper": config.paper, "profile": config.profile, "arm": arm.name,
        "model": spec, "class_names": list(data.classes),
        "positive": data.positive if isinstance(data.positive, str) else list(data.positive),  # a name or a list
        "theta": arm.aux.theta if arm.aux is not None else None,
        "aux": None if arm.aux is None else {"C": arm.aux.C, "gamma": arm.aux.gamma, "standardize": arm.aux.standardize},
        "preprocess": Preprocess(canvas=data.canvas, resize=data.resize).to_dict(),
        "input": {"name": cnn_arm.input, "kwargs": dict(cnn_arm.input_kwargs)},
        "evaluation": {"grouping": run.get("grouping"), "fold_mode": run.get("fold_mode"),
                       "image_level": run.get("image_level"), "n_folds": run["n_folds"]},
        "onnx": {"opset": 17, "graph_input": None, "outputs": ["log_probs", "spectral"]} if onnx else None,
        "folds": [f.__dict__ for f in folds],
    }


def _write_onnx(root: Path, meta: dict, folds: list[FoldFiles]) -> str:
    """Export every fold; returns the graphs' input ("images", or "inputs" for a network-only graph)."""
    from blastscope.inference.onnx_export import export_onnx

    size = Preprocess(**meta["preprocess"]).output_size
    if size is None:
        raise BundleError("ONNX export needs a fixed image size: the run has neither data.canvas nor data.resize")
    partial = Bundle(root, meta, folds, [None] * len(folds), [read_arrays(root, f.input) for f in folds])
    kinds = {export_onnx(model, model_input, size, root / f.onnx) for f, (model, model_input) in zip(folds, partial.torch_models())}
    return kinds.pop() if len(kinds) == 1 else "mixed"


INT8_CALIBRATION_CELLS = 64
INT8_CHECK_CELLS = 256


def _int8_samples(meta: dict, folds: list[FoldFiles], run_dir: Path) -> list[dict]:
    """Per fold model k: up to 64 of its own training cells for calibration (``folds.csv`` rows of the
    training subjects outside fold k, drawn with seed k) and up to 256 of its out-of-fold cells for the
    checks, which it never trained on and which calibration never read. The cells are decoded when
    used, by ``sample["decode"](paths)`` (one fold's cells in memory at a time)."""
    import numpy as np

    from blastscope.data.preprocess import load_preprocessed
    from blastscope.engine.atomic import read_safe_csv
    from blastscope.evaluation.operating_point import normalize_positive

    rows = read_safe_csv(run_dir / "folds.csv", keep_default_na=False, dtype={"subject_id": str, "label": str})
    prep = Preprocess(**meta["preprocess"])
    classes = meta["class_names"]
    found = normalize_positive(classes, meta["positive"])
    positive_names = [found] if isinstance(found, str) else list(found)

    def cells(paths: list[str]) -> np.ndarray:
        out = []
        for path in paths:
            if not Path(path).is_file():
                raise BundleError(f"{path}: int8 calibration and its checks read the run's cells, and this one is missing")
            out.append(load_preprocessed(path, prep))
        return np.stack(out)

    samples = []
    for k in range(len(folds)):
        train = rows[(rows["fold"] >= 0) & (rows["fold"] != k)]
        held = rows[rows["fold"] == k]
        calib = train.sample(n=min(INT8_CALIBRATION_CELLS, len(train)), random_state=k).sort_index()
        check = held.sample(n=min(INT8_CHECK_CELLS, len(held)), random_state=k).sort_index()
        samples.append({"decode": cells, "y": check["label"].isin(positive_names).to_numpy(),
                        "positive": [classes.index(c) for c in positive_names],
                        "calibration_cells": calib["path"].tolist(), "check_cells": check["path"].tolist()})
    return samples


def _int8_verdict(root: Path, folds: list[FoldFiles], entries: list[dict], samples: list[dict], key: str, make,
                  bundle: Bundle) -> dict:
    """Make every fold's int8 version (``make(k, fold, calibration cells) -> (file, fp32, int8)``), check
    each on its out-of-fold cells (the CNN's labels, the fold's answers with its theta rule and SVM,
    and its out-of-domain flags, as ``predict`` gives them) and keep them only if every fold passes
    (fold entries gain ``key``)."""
    from blastscope.inference.int8 import INT8_AGREEMENT, INT8_AUC_DIFF, fold_checks, int8_checks

    records, accepted = [], True
    for k, (f, s) in enumerate(zip(folds, samples)):
        name, fp32, q = make(k, f, s["decode"](s["calibration_cells"]))
        answer, flag = fold_checks(bundle, k)
        result = int8_checks(fp32, q, s["decode"](s["check_cells"]), s["y"], s["positive"], answer=answer, flag=flag)
        accepted &= result["accepted"]
        records.append({"fold": f.fold, "file": name, **result, "calibration_cells": s["calibration_cells"],
                        "check_cells": s["check_cells"]})
    vote = None
    if accepted:
        for i, (entry, record) in enumerate(zip(entries, records)):
            folds[i] = replace(folds[i], **{key: record["file"]})
            entry[key] = record["file"]
        vote = _vote_check(bundle, "torch" if key == "torch_int8" else "onnx", samples)
        accepted = vote["ok"]
    if not accepted:
        for i, (entry, record) in enumerate(zip(entries, records)):
            (root / record["file"]).unlink()
            record["file"] = None
            folds[i] = replace(folds[i], **{key: None})
            entry[key] = None
    bundle._torch_int8 = bundle._onnx = None  # the partial bundle's caches held the int8 models of the checks
    verdict = "accepted" if accepted else "rejected"
    logger.info("%s int8 %s (%s)", "ONNX" if key == "onnx_int8" else "PyTorch", verdict, "; ".join(
        f"fold {r['fold']}: labels agree on {r['label_agreement']:.1%}, speed {r['speedup']:.2f}x" for r in records))
    return {"accepted": bool(accepted), "rule": f"label agreement >= {INT8_AGREEMENT:.1%} (the CNN's and the fold's "
            f"answers with its theta rule and SVM; its out-of-domain flags likewise) and |AUC difference| <= "
            f"{INT8_AUC_DIFF} (the answered probability) on each fold model's out-of-fold cells; then the voted label, "
            "the prediction set and the review flag of the whole bundle agree likewise on the pooled check cells",
            "folds": records, "vote": vote}


INT8_VOTE_CELLS = 256


def _vote_check(bundle: Bundle, backend: str, samples: list[dict]) -> dict:
    """The whole bundle in int8 against float32 on up to 256 of the folds' check cells (an equal share
    from each fold): the voted label, the conformal prediction set and the review flag, as ``predict``
    shows them, must each agree on >= 99.5% of the cells."""
    import numpy as np

    from blastscope.inference.int8 import INT8_AGREEMENT
    from blastscope.inference.predictor import Predictor

    share = max(1, INT8_VOTE_CELLS // len(samples))
    cells = np.concatenate([s["decode"](s["check_cells"][:share]) for s in samples])
    names = [str(i) for i in range(len(cells))]
    out = {}
    for precision in ("float32", "int8"):
        predictor = Predictor(bundle, backend=backend, precision=precision)
        rows = predictor.cell_rows(predictor.predict_images(cells), names, [""] * len(cells))
        out[precision] = rows
    agree = {field: float(np.mean([a[field] == b[field] for a, b in zip(out["float32"], out["int8"])]))
             for field in ("pred", "prediction_set", "review")}
    return {"cells": int(len(cells)), **{f"{k}_agreement": v for k, v in agree.items()},
            "ok": all(v >= INT8_AGREEMENT for v in agree.values())}


def _write_int8(root: Path, meta: dict, folds: list[FoldFiles], run_dir: Path, onnx: bool) -> None:
    """PyTorch int8 parameters (and, with ``onnx``, int8 graphs) for every fold model, each kind kept
    only if every fold passes its checks; the records go to ``meta["int8"]`` and ``meta["onnx"]["int8"]``."""
    import torch

    from blastscope.inference.torch_int8 import (
        ENGINE,
        Int8Error,
        TorchRunner,
        calibrate,
        engine_available,
        int8_networks,
        quantize_model,
        save_qparams,
    )

    samples = _int8_samples(meta, folds, run_dir)
    partial = Bundle(root, meta, folds, [read_svm(root, f.svm) for f in folds], [read_arrays(root, f.input) for f in folds],
                     oods=[read_ood(root, f.ood) for f in folds])
    models = partial.torch_models()
    try:
        int8_networks(models[0][0])
        if not engine_available():
            raise Int8Error(f"this PyTorch has no {ENGINE} quantized engine (has {torch.backends.quantized.supported_engines})")
    except Int8Error as e:
        meta["int8"] = {"accepted": False, "refused": str(e), "folds": []}
        logger.warning("no PyTorch int8: %s", e)
    else:
        def make_torch(k: int, f: FoldFiles, calib):
            model, model_input = models[k]
            qparams = calibrate(model, model_input, calib)
            name = f"int8_fold{f.fold}.safetensors"
            save_qparams(root / name, qparams, {"fold": f.fold, "calibration_cells": len(calib)})
            return name, TorchRunner(model, model_input), TorchRunner(quantize_model(model, qparams), model_input)

        meta["int8"] = {**_int8_verdict(root, folds, meta["folds"], samples, "torch_int8", make_torch, partial), "engine": ENGINE,
                        "quantized": "the base network's convolutions and max-pools (PyTorch x86 engine: per-channel "
                        "int8 weights, uint8 activations); stain layer, DCT, log, bilinear pooling and linear stay float32"}
    if onnx:
        from blastscope.inference.int8 import quantize_graph
        from blastscope.inference.onnx_export import OnnxModel

        def make_onnx(k: int, f: FoldFiles, calib):
            name = f"model_fold{f.fold}.int8.onnx"
            quantize_graph(root / f.onnx, root / name, calib)
            return name, OnnxModel(root / f.onnx), OnnxModel(root / name)

        meta["onnx"]["int8"] = {**_int8_verdict(root, folds, meta["folds"], samples, "onnx_int8", make_onnx, partial),
                                "quantized": "convolutions (QDQ, per-channel int8 weights, uint8 activations); stain "
                                "mixing, DCT and log stay float32"}
