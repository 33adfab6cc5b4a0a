"""``predict_case``: a patient's case end to end, in fresh processes, against the reference.

The same ``n`` cells (the C-NMC sample cells under distinct names, in one folder) are predicted by
``blastscope predict BUNDLE FOLDER`` (decode, centre, stain and DCT layers, every fold model
batched, SVM, vote, CSV and JSON written) and by :mod:`blastscope.bench.case_reference` (one image
at a time, one fold model after another), each in a new Python process timed from start to exit,
so imports and model loading count as they do for a lab. The labels must agree (ties between fold
models aside: the reference breaks them by the first class, ``predict`` by the mean probability).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blastscope.bench.result import CaseResult

__all__ = ["run_case"]


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def run_case(bundle: Path, paths: list[Path], n_cells: int, threads: int | None = None, backend: str = "torch",
             precision: str = "auto") -> CaseResult:
    """``predict`` on ``n_cells`` cells in a fresh process with ``backend`` (onnx: the lab without
    PyTorch; that process never imports it) at ``precision`` (auto: int8 where the bundle kept it)
    against the reference script (PyTorch, one image and one
    fold model at a time)."""
    with tempfile.TemporaryDirectory(prefix="blastscope-case-bench-") as tmp:
        folder = Path(tmp) / "cells"
        folder.mkdir()
        for i in range(n_cells):
            src = paths[i % len(paths)]
            try:
                os.link(src, folder / f"{i:04d}_{src.name}")  # no copy where the file system allows
            except OSError:
                shutil.copyfile(src, folder / f"{i:04d}_{src.name}")
        out, ref_out = Path(tmp) / "predict.csv", Path(tmp) / "reference.csv"
        extra = (["--threads", str(threads)] if threads else []) + ["--backend", backend, "--precision", precision]
        optimised = _timed([sys.executable, "-m", "blastscope", "predict", str(bundle), str(folder), "--out", str(out), *extra])
        reference = _timed([sys.executable, "-m", "blastscope.bench.case_reference", str(bundle), str(folder), str(ref_out)])
        got = {r["file"]: r for r in csv.DictReader(out.open())}
        ref = {r["file"]: r for r in csv.DictReader(ref_out.open())}
        decided = [f for f, r in ref.items() if _no_tie(r["votes"])]
        same = sum(got[f]["pred"] == ref[f]["pred"] for f in decided) / max(len(decided), 1)
        ran = json.loads(out.with_suffix(".json").read_text())["settings"]["precision"]
    name = "predict_case" + ("" if backend == "torch" else f"_{backend}") + ("" if precision == "auto" else f"_{precision}")
    return CaseResult(name, f"predict --backend {backend} ({ran}), a {n_cells}-cell case end to end (fresh process) vs one image and one fold at a time",
                      "s", optimised, reference, higher_is_better=False, target=">= 8x reference and <= 5 s",
                      met=reference / optimised >= 8.0 and optimised <= 5.0,
                      agreement={"same_label_share": same, "cells_compared": len(decided), "ok": same == 1.0},
                      notes="both in new processes: imports, bundle loading and writing count",
                      extra={"bundle": str(bundle), "cells": n_cells, "backend": backend, "precision": ran})


def _no_tie(votes: str) -> bool:
    labels = votes.split("|")
    counts = sorted((labels.count(v) for v in set(labels)), reverse=True)
    return len(counts) == 1 or counts[0] > counts[1]



def run_int8(bundle: Path, paths: list[Path], n_cells: int, kind: str = "onnx") -> CaseResult:
    """int8 of the bundle's fold-1 model against float32, for ``kind`` "onnx" (onnxruntime's QDQ
    graph) or "torch" (PyTorch's x86 int8, :mod:`blastscope.inference.torch_int8`).

    The bundle's own int8 when it has it (calibrated on fold 1's training cells at export);
    otherwise fold 1 quantized here, calibrated on every other sample cell and checked on the rest,
    never on the same cells. The checks are :func:`blastscope.inference.int8.int8_checks`: the CNN's
    labels and fold 1's answers (and out-of-domain flags) agree on >= 99.5% of cells and the AUC
    (labels from the C-NMC file names) within 0.005.
    """
    import numpy as np

    from blastscope.data.decode import read_image
    from blastscope.inference.bundle import load_bundle
    from blastscope.inference.int8 import INT8_AGREEMENT, INT8_AUC_DIFF, fold_checks, int8_checks

    name = f"{kind}_int8"
    title = ("int8 ONNX (QDQ convolutions) vs float32 ONNX" if kind == "onnx"
             else "int8 PyTorch (x86 engine, the base network) vs float32 PyTorch") + ", bundle fold 1"
    b = load_bundle(bundle, backend="none")
    fold = b.folds[0]
    if kind == "onnx" and fold.onnx is None:
        return CaseResult.skip(name, title, "the bundle has no ONNX graphs (export --onnx)")
    positive = b.class_names.index(b.positive if isinstance(b.positive, str) else b.positive[0])
    check_paths = paths[1::2] or paths
    images = np.stack([b.preprocess(read_image(check_paths[i % len(check_paths)])) for i in range(n_cells)])
    y = np.array([p.stem.endswith("_all") for p in (check_paths[i % len(check_paths)] for i in range(n_cells))], dtype=int)
    with tempfile.TemporaryDirectory(prefix="blastscope-int8-") as tmp:
        own = fold.onnx_int8 if kind == "onnx" else fold.torch_int8
        calib = None if own is not None else np.stack([b.preprocess(read_image(p)) for p in paths[0::2]])
        source = ("the bundle's int8 (calibrated on fold 1's training cells)" if own is not None
                  else f"fold 1 quantized here, calibrated on {len(calib)} other sample cells")
        if kind == "onnx":
            from blastscope.inference.int8 import quantize_graph
            from blastscope.inference.onnx_export import OnnxModel

            int8_path = bundle / own if own is not None else Path(tmp) / "int8.onnx"
            if own is None:
                quantize_graph(bundle / fold.onnx, int8_path, calib)
            fp32, q = OnnxModel(bundle / fold.onnx), OnnxModel(int8_path)
        else:
            from blastscope.inference.torch_int8 import Int8Error, TorchRunner, calibrate, quantize_model

            model, model_input = b.torch_models()[0]
            try:
                q = TorchRunner(*b.torch_int8_models()[0]) if own is not None else \
                    TorchRunner(quantize_model(model, calibrate(model, model_input, calib)), model_input)
            except Int8Error as e:
                return CaseResult.skip(name, title, str(e))
            fp32 = TorchRunner(model, model_input)
        answer, flag = fold_checks(b, 0)  # fold 1's answers and out-of-domain flags, as predict gives them
        checks = int8_checks(fp32, q, images, y, positive, answer=answer, flag=flag)
    auc = "" if checks["auc_diff"] is None else f", AUC differs by {checks['auc_diff']:.4f}"
    return CaseResult(name, title, "img/s", checks["int8_img_s"], checks["fp32_img_s"],
                      target=f"labels and the fold's answers agree >= {INT8_AGREEMENT:.1%}, AUC diff <= {INT8_AUC_DIFF}; "
                             "accepted only if all hold",
                      met=checks["accepted"], agreement={"label_agreement": checks["label_agreement"],
                                                         "answer_agreement": checks["answer_agreement"],
                                                         "auc_diff": checks["auc_diff"], "ok": checks["accepted"]},
                      notes=("accepted" if checks["accepted"] else "rejected") + f": labels agree on "
                            f"{checks['label_agreement']:.1%} of {n_cells} cells (the fold's answers with its SVM: "
                            f"{checks['answer_agreement']:.1%}){auc}; {source}; int8 changes the "
                            f"log-probabilities by up to {checks['max_abs_logp_diff']:.2g}",
                      extra=checks)
