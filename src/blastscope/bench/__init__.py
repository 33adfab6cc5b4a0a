"""``blastscope bench``: optimised paths against straightforward references, with ratios.

Every case runs the optimised code path and a plain reference written here (same maths: NCHW
float32, the matrix DCT, per-sample PIL transforms, a batch-1 inference loop) in one process,
checks that their outputs agree within a stated tolerance, and reports both figures and their
ratio; the machine's sgemm rate, measured in the same run, is the roofline for the model steps.
Timing is never asserted by tests, only structure and agreement.
"""
from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from blastscope.bench.config import BenchConfig
from blastscope.bench.result import CaseResult

__all__ = ["GROUPS", "BenchConfig", "CaseResult", "run_benchmarks"]

GROUPS = ("training", "inference", "gpu", "data", "latency", "svm", "memory", "protocol", "case", "serve")
"""Case groups ``run_benchmarks(only=...)`` can select (``data`` needs ``training`` for the waiting share)."""

logger = logging.getLogger(__name__)


def _machine(threads: int) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version()}


def _guard(name: str, title: str, fn: Callable[[], list[CaseResult]]) -> list[CaseResult]:
    try:
        return fn()
    except Exception as e:
        logger.exception("benchmark case %s failed", name)
        return [CaseResult.skip(name, title, f"error: {type(e).__name__}: {e}")]


def run_benchmarks(quick: bool, config: BenchConfig | None = None,
                   progress: Callable[[str], None] | None = None, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run every case; returns ``{"machine", "config", "sgemm_gflops", "cases", "seconds", "load_average"}``.

    Args:
        quick: the ``--quick`` sizes (under two minutes on 2 quiet cores) instead of the full run.
        config: explicit sizes (overrides ``quick``), e.g. a tiny configuration for tests.
        progress: called with each case's name before it runs.
        only: run just these groups of :data:`GROUPS` (None: all).
    """
    import torch

    from blastscope.bench.cells import MISSING, cell_batch, cell_paths, load_cells
    from blastscope.bench.data import run_data
    from blastscope.bench.inference import run_inference
    from blastscope.bench.latency import run_latency
    from blastscope.bench.protocol import run_protocol
    from blastscope.bench.svm import run_svm
    from blastscope.bench.timing import load_average, sgemm_gflops
    from blastscope.bench.training import run_training

    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown benchmark group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    run = set(only or GROUPS)
    cfg = config or (BenchConfig.quick() if quick else BenchConfig.full())
    say = progress or (lambda _name: None)
    t_start = time.perf_counter()
    load_start = load_average()
    say("sgemm")
    sgemm = sgemm_gflops(cfg.sgemm_n, seconds=0.5 if quick else 1.5)
    cells = load_cells(cfg.data_dir, cfg.image_size)
    paths = cell_paths(cfg.data_dir)
    cases: list[CaseResult] = []

    figures = None

    def training() -> list[CaseResult]:
        nonlocal figures
        found, figures = run_training(cfg, cell_batch(cells, cfg.batch_size, cfg.image_size, seed=1), sgemm)
        return found

    if "training" in run:
        say("training step")
        cases += _guard("train_step", "SDCT-Net training step", training)
    if "inference" in run:
        say("inference")
        cases += _guard("inference_batched", "SDCT-AuxNet-theta inference",
                        lambda: run_inference(cfg, cell_batch(cells, cfg.infer_images, cfg.image_size, seed=2), sgemm))
    gpu_figures = None
    if "gpu" in run:
        from blastscope.engine.device import resolve_device

        title = "GPU training, DCT, data and inference cases"
        device = resolve_device(cfg.device)
        if device.type != "cuda":
            built = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but sees no GPU"
            why = ("--device cpu" if cfg.device == "cpu" else f"no CUDA GPU: this PyTorch ({torch.__version__}) is {built}")
            cases.append(CaseResult.skip("gpu", title, why))
        else:
            from blastscope.bench.gpu import run_gpu

            def gpu() -> list[CaseResult]:
                nonlocal gpu_figures
                found, gpu_figures = run_gpu(cfg, cell_batch(cells, cfg.batch_size, cfg.image_size, seed=1),
                                             cell_batch(cells, cfg.infer_images, cfg.image_size, seed=2), device)
                return found

            say("GPU")
            cases += _guard("gpu", title, gpu)
    if "data" not in run:
        pass
    elif paths:
        say("data pipeline")
        step_s = figures.step.median if figures is not None else None
        cases += _guard("data_pipeline", "Data pipeline", lambda: run_data(cfg, paths, step_s, cfg.batch_size))
    else:
        reason = MISSING.format(path=cfg.data_dir)
        cases += [CaseResult.skip("data_pipeline", "Data pipeline (OpenCV vs PIL)", reason),
                  CaseResult.skip("data_wait", "Data waiting share of a training step", reason)]
    if "latency" in run:
        say("latency coding")
        cases += _guard("latency", "Spike latency coding", lambda: [run_latency(cfg)])
    if "svm" in run:
        say("SVM")
        cases += _guard("svm_fit", "Auxiliary SVM", lambda: run_svm(cfg))
    if cfg.rss and "memory" in run:
        say("peak memory")
        cases += _guard("peak_rss", "Peak memory of a training step", lambda: [_rss_case(cfg)])
    if "case" in run:
        title = f"predict, a {cfg.serve_cells}-cell case end to end"
        if cfg.bundle is None or not paths:
            cases.append(CaseResult.skip("predict_case", title, "needs a model bundle (blastscope bench --bundle DIR) and the C-NMC sample cells"))
        else:
            cases += _case_group(cfg, paths, say)
    if "serve" in run:
        from importlib.util import find_spec

        title = f"Workstation: {cfg.serve_cells}-cell case, upload to every cell shown"
        if cfg.bundle is None:
            cases.append(CaseResult.skip("serve_case", title, "needs a model bundle: blastscope bench --bundle DIR"))
        elif find_spec("fastapi") is None or not paths:
            cases.append(CaseResult.skip("serve_case", title, "needs the serve extra and the C-NMC sample cells"))
        else:
            from blastscope.bench.serve import run_serve

            say("workstation case")
            cases += _guard("serve_case", title, lambda: [run_serve(cfg.bundle, paths, cfg.serve_cells)])
    if figures is not None and "protocol" in run:
        byname = {c.name: c for c in cases}
        inf = byname.get("inference_batched")
        cases += run_protocol(cfg, cfg.batch_size / figures.step.median, cfg.batch_size / figures.reference_step.median,
                              inf.optimised if inf else None, inf.reference if inf else None, figures.flops,
                              cfg.batch_size, gpu=gpu_figures)
    return {
        "machine": _machine(torch.get_num_threads()),
        "config": cfg.to_dict(),
        "quick": quick and config is None,
        "groups": [g for g in GROUPS if g in run],
        "sgemm_gflops": sgemm,
        "load_average": {"start": load_start, "end": load_average()},
        "seconds": time.perf_counter() - t_start,
        "cases": [c.to_dict() for c in cases],
    }


def _case_group(cfg: BenchConfig, paths: list, say: Callable[[str], None]) -> list[CaseResult]:
    """The lab's case with ``cfg.bundle``: predict end to end (and at float32 beside int8, with onnx
    where exported) and both int8 checks; a bundle that fails verification is one failed case."""
    import torch

    from blastscope.bench.case import run_case, run_int8
    from blastscope.inference.bundle import BundleError, load_bundle

    title = f"predict, a {cfg.serve_cells}-cell case end to end"
    try:
        bundle = load_bundle(cfg.bundle, backend="none")
    except (BundleError, OSError, ValueError) as e:
        return [CaseResult.skip("predict_case", title, f"the bundle cannot be used: {e}")]
    threads = torch.get_num_threads()
    say("predict case")
    cases = _guard("predict_case", title, lambda: [run_case(cfg.bundle, paths, cfg.serve_cells, threads)])
    if bundle.has_torch_int8:
        title = f"predict --precision float32, {cfg.serve_cells} cells end to end (int8's effect on the case)"
        cases += _guard("predict_case_float32", title,
                        lambda: [run_case(cfg.bundle, paths, cfg.serve_cells, threads, precision="float32")])
    if cfg.onnx and all(f.onnx for f in bundle.folds):
        title = f"predict --backend onnx, {cfg.serve_cells} cells end to end"
        cases += _guard("predict_case_onnx", title, lambda: [run_case(cfg.bundle, paths, cfg.serve_cells, threads,
                                                                       backend="onnx")])
    say("int8")
    cases += _guard("torch_int8", "int8 PyTorch vs float32 PyTorch",
                    lambda: [run_int8(cfg.bundle, paths, cfg.serve_cells, kind="torch")])
    if cfg.onnx:
        cases += _guard("onnx_int8", "int8 ONNX vs float32 ONNX", lambda: [run_int8(cfg.bundle, paths, cfg.serve_cells)])
    return cases


def _rss_case(cfg: BenchConfig) -> CaseResult:
    from blastscope.bench.memory import measure_in_subprocess

    opt = measure_in_subprocess("optimised", cfg.image_size, cfg.batch_size)
    ref = measure_in_subprocess("reference", cfg.image_size, cfg.batch_size)
    return CaseResult(
        "peak_rss", f"Peak resident memory of a training step (batch {cfg.batch_size}, {cfg.image_size}x{cfg.image_size})",
        "GB", opt["peak_gb"], ref["peak_gb"], higher_is_better=False, target="<= 3 GB", met=opt["peak_gb"] <= 3.0,
        notes=f"fresh process each; before the step {opt['baseline_gb']:.2f} GB (interpreter, torch, model)",
        extra={"optimised": opt, "reference": ref})
