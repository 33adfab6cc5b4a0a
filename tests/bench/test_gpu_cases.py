"""The GPU bench cases (`blastscope.bench.gpu`) run on the CPU here: structure and agreement, never timing.
On a machine with a GPU, `blastscope bench --only gpu` runs the same code on it (scripts/gpu-check.sh)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from blastscope.bench import BenchConfig, run_benchmarks
from blastscope.bench.gpu import GpuFigures, matmul_tflops, run_gpu
from blastscope.bench.protocol import protocol_images, run_protocol


def _cfg() -> BenchConfig:
    return BenchConfig(image_size=40, batch_size=4, train_repeats=1, infer_images=6, infer_batch=4, loop_images=3,
                       data_images=2, latency_batch=2, latency_shape=(2, 12, 12), timesteps=5, svm_train=60, svm_test=20,
                       svm_features=10, rss=False, sgemm_n=64)


def test_gpu_cases_on_the_cpu_agree_and_report_fractions():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    cells = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    cases, figures = run_gpu(_cfg(), batch, cells, torch.device("cpu"), matmul_n=64)
    by = {c.name: c for c in cases}
    assert list(by) == ["gpu_matmul", "gpu_train_step", "gpu_channels_last", "gpu_cudnn_benchmark", "gpu_pinned_copy",
                        "gpu_vs_cpu_step", "gpu_dct", "gpu_data_wait", "gpu_inference"]
    for c in cases:
        assert c.optimised > 0 and c.reference > 0 and c.skipped is None, c.name
        if c.agreement is not None:
            assert c.agreement["ok"], (c.name, c.agreement)
    step = by["gpu_train_step"]
    assert 0 < step.extra["fraction_amp"] and 0 < step.extra["fraction_fp32"]
    assert step.agreement["same_argmax_share"] >= 0.5
    assert 0.0 <= by["gpu_data_wait"].optimised <= 1.0 and 0.0 <= by["gpu_data_wait"].reference <= 1.0
    assert by["gpu_inference"].agreement["max_abs_logp_diff"] == 0.0  # both on the CPU: the same computation
    assert by["gpu_vs_cpu_step"].agreement["max_abs_weight_diff_after_step"] == 0.0
    assert figures.train_rate == step.optimised and figures.infer_rate == by["gpu_inference"].optimised


def test_matmul_rate_counts_two_n_cubed():
    assert 0 < matmul_tflops(torch.device("cpu"), torch.float32, 32, repeats=2) < 1e3


def test_measured_gpu_step_gives_the_protocol_estimate():
    from blastscope.bench.flops import count_flops
    from blastscope.models import create_model

    cfg = _cfg()
    flops = count_flops(create_model("sdct_net"), (3, 40, 40))
    cases = run_protocol(cfg, 10.0, 5.0, 50.0, 20.0, flops, 64, gpu=GpuFigures(1000.0, 4000.0, "Test GPU"))
    measured = next(c for c in cases if c.name == "protocol_gpu_measured")
    train, val = protocol_images(cfg, 64)
    assert measured.optimised == pytest.approx((train / 1000.0 + val / 4000.0) / 3600.0)
    assert measured.reference == pytest.approx((train / 10.0 + val / 50.0) / 3600.0)
    assert "Test GPU" in measured.title
    assert "protocol_gpu_measured" not in {c.name for c in run_protocol(cfg, 10.0, 5.0, 50.0, 20.0, flops, 64)}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the group runs instead")
def test_gpu_group_is_skipped_without_cuda_saying_why():
    out = run_benchmarks(True, config=_cfg(), only=("gpu",))
    (case,) = out["cases"]
    assert case["name"] == "gpu" and case["skipped"].startswith("no CUDA GPU: this PyTorch") and torch.__version__ in case["skipped"]


def test_bench_device_option_skips_or_refuses():
    from dataclasses import replace

    from click.testing import CliRunner

    from blastscope.cli import main

    out = run_benchmarks(True, config=replace(_cfg(), device="cpu"), only=("gpu",))
    assert [c["skipped"] for c in out["cases"]] == ["--device cpu"]
    if not torch.cuda.is_available():
        r = CliRunner().invoke(main, ["bench", "--quick", "--only", "gpu", "--device", "cuda"])
        assert r.exit_code == 2 and "device 'cuda' was asked for" in r.output
