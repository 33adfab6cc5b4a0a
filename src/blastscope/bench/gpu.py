"""GPU cases (group ``gpu``): where a lab's or a cluster's GPU spends a training step.

Run by ``blastscope bench`` when PyTorch sees a CUDA GPU (else skipped, saying so); every case
runs on ``device`` and synchronises it around each timed call, so :func:`run_gpu` also runs on
the CPU (the tests do that, for structure and agreement, never for timing).

* ``gpu_matmul``: the device's measured matrix-multiply rate, bf16 against float32 (TF32 off:
  true float32), the roofline the step is reported against;
* ``gpu_train_step``: one SDCT-Net training step (the trainer's ``train_step``, channels-last,
  cuDNN autotuned) with mixed precision against float32, img/s and the fraction of the measured
  matrix-multiply rate of each precision; the two start from the same weights, and their loss and
  logits after one step are compared;
* ``gpu_channels_last``, ``gpu_cudnn_benchmark``, ``gpu_pinned_copy``: each of those choices
  against the step (or copy) without it;
* ``gpu_vs_cpu_step``: one float32 step on the device against the same step on the CPU: how far
  GPU results are from CPU results (logits, weights after the step);
* ``gpu_dct``: the DCT layer forward + backward by ``torch.fft`` against the matrix products;
* ``gpu_data_wait``: the share of a training step spent waiting for the next batch from the
  trainer's loader (the sampler, the CPU augmentation, pinned memory, non-blocking copies),
  with DataLoader workers against none;
* ``gpu_inference``: batched float32 prediction on the GPU against the CPU, the same cells.

The measured mixed-precision step also replaces the assumed TFLOP/s in the full-protocol
estimate (``protocol_gpu``).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np
import torch

from blastscope.bench.config import BenchConfig
from blastscope.bench.result import CaseResult
from blastscope.bench.timing import Timing, time_call

__all__ = ["GpuFigures", "matmul_tflops", "run_gpu"]

LOSS_RTOL = 0.05  # mixed precision vs float32 after one step from the same weights
INFER_ATOL = 1e-2  # log-probabilities, GPU (cuDNN, TF32 convolutions) vs CPU


class GpuFigures:
    """What the protocol estimate reuses: training img/s (mixed precision) and inference img/s."""

    def __init__(self, train_rate: float, infer_rate: float | None, name: str) -> None:
        self.train_rate, self.infer_rate, self.name = train_rate, infer_rate, name


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> Timing:
    """:func:`~blastscope.bench.timing.time_call` of ``fn`` with the device synchronised after each call."""
    return time_call(lambda: (fn(), _sync(device)), repeats=repeats, warmup=warmup)


@contextlib.contextmanager
def _true_float32():
    """TF32 off for float32 matrix products and convolutions (restored afterwards): PyTorch's
    ``fp32_precision = "ieee"`` settings where it has them (mixing them with the older ``allow_tf32``
    flags is an error there), else the ``allow_tf32`` flags."""
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        saved = matmul.fp32_precision, conv.fp32_precision
        matmul.fp32_precision = conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = saved
        return
    saved = matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """Best ``n x n @ n x n`` rate on ``device`` in ``dtype`` (TFLOP/s, ``2 n^3`` per product)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    with _true_float32():
        t = _timed(lambda: torch.mm(a, b), device, repeats)
    return 2.0 * n**3 / t.best / 1e12


def _amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def run_gpu(cfg: BenchConfig, batch: np.ndarray, infer_images: np.ndarray, device: torch.device,
            matmul_n: int = 4096) -> tuple[list[CaseResult], GpuFigures]:
    """The GPU cases on ``device`` for one uint8 training batch and the inference cells."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as the trainer sets it (restored at the end)
    try:
        return _run_gpu(cfg, batch, infer_images, device, matmul_n, name)
    finally:
        torch.backends.cudnn.benchmark = benchmark


def _run_gpu(cfg: BenchConfig, batch: np.ndarray, infer_images: np.ndarray, device: torch.device, matmul_n: int,
             name: str) -> tuple[list[CaseResult], GpuFigures]:
    import copy

    from blastscope.bench.flops import count_flops
    from blastscope.engine.device import autocast, grad_scaler
    from blastscope.engine.inference import predict_arrays
    from blastscope.engine.tensors import to_model_input
    from blastscope.engine.trainer import train_step
    from blastscope.models import create_model

    dtype = _amp_dtype(device)
    fp32_rate = matmul_tflops(device, torch.float32, matmul_n)
    half_rate = matmul_tflops(device, dtype, matmul_n)
    cases = [CaseResult("gpu_matmul", f"{name}: {matmul_n}x{matmul_n} matrix multiply, {str(dtype)[6:]} vs float32 "
                        "(TF32 off)", "TFLOP/s", half_rate, fp32_rate,
                        notes="the roofline of the training step below", extra={"device": name, "n": matmul_n})]

    size, b = cfg.image_size, len(batch)
    torch.manual_seed(0)
    base = create_model("sdct_net")
    flops = count_flops(base, (3, size, size))
    raw = torch.from_numpy(batch).to(device)
    y = (torch.arange(b) % 2).to(device)

    def step_fn(amp: torch.dtype | None, channels_last: bool = True, on: torch.device = device):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = copy.deepcopy(base).to(device=on, memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-2)
        scaler = grad_scaler(on, amp)
        x_raw, y_on = raw.to(on), y.to(on)

        def run():
            x = to_model_input(x_raw)
            return train_step(model, x if channels_last else x.contiguous(), y_on, opt, None, autocast(on, amp), scaler)
        return model, run

    m32, fp32_step = step_fn(None)
    mamp, amp_step = step_fn(dtype)
    with _true_float32():
        loss32, logits32 = fp32_step()
    loss_amp, logits_amp = amp_step()
    loss_diff = abs(float(loss_amp) - float(loss32)) / max(abs(float(loss32)), 1e-6)
    same = float((logits32.argmax(1) == logits_amp.argmax(1)).float().mean())
    with _true_float32():
        t32 = _timed(fp32_step, device, cfg.train_repeats)
    tamp = _timed(amp_step, device, cfg.train_repeats)
    rate32, rate_amp = b / t32.median, b / tamp.median
    per_step = flops.train_total() * b
    frac32, frac_amp = per_step / t32.median / 1e12 / fp32_rate, per_step / tamp.median / 1e12 / half_rate
    cases.append(CaseResult(
        "gpu_train_step", f"{name}: SDCT-Net training step (batch {b}, {size}x{size}), {str(dtype)[6:]} autocast vs "
        "float32", "img/s", rate_amp, rate32, target=">= 1x float32", met=rate_amp >= rate32,
        agreement={"loss_rel_diff": loss_diff, "same_argmax_share": same, "tolerance": LOSS_RTOL, "ok": loss_diff <= LOSS_RTOL},
        notes=f"fraction of the measured matrix-multiply rate: {frac_amp:.2f} ({str(dtype)[6:]}), {frac32:.2f} (float32); "
              f"{per_step / 1e9:.0f} GFLOP per step (matrix DCT counted)",
        extra={"fraction_amp": frac_amp, "fraction_fp32": frac32, "step_s_amp": tamp.to_dict(), "step_s_fp32": t32.to_dict(),
               "device": name}))

    cases += _lever_cases(step_fn, dtype, device, cfg.train_repeats, b, name, raw)
    cases.append(_cpu_step_case(step_fn, device, b, name))
    cases.append(_dct_case(m32, raw, device, cfg.train_repeats, name))
    cases.append(_data_wait_case(cfg, batch, device, amp_step, name))

    model = copy.deepcopy(base).eval()
    cpu_logp = predict_arrays(model, infer_images, cfg.infer_batch)[0]
    on_device = copy.deepcopy(base).to(device).eval()
    gpu_logp = predict_arrays(on_device, infer_images, cfg.infer_batch)[0]
    t_gpu = _timed(lambda: predict_arrays(on_device, infer_images, cfg.infer_batch), device, 3)
    t_cpu = _timed(lambda: predict_arrays(model, infer_images, cfg.infer_batch), torch.device("cpu"), 1, warmup=0)
    n = len(infer_images)
    diff = float(np.abs(gpu_logp - cpu_logp).max())
    cases.append(CaseResult(
        "gpu_inference", f"{name}: SDCT-Net batched prediction ({n} cells, batch {cfg.infer_batch}) vs this machine's CPU",
        "img/s", n / t_gpu.median, n / t_cpu.median, agreement={"max_abs_logp_diff": diff, "tolerance": INFER_ATOL,
                                                                "ok": diff <= INFER_ATOL},
        notes="float32 on both (cuDNN may use TF32 convolutions on the GPU)", extra={"device": name}))
    return cases, GpuFigures(rate_amp, n / t_gpu.median, name)


def _lever_cases(step_fn, dtype, device: torch.device, repeats: int, b: int, name: str, raw: torch.Tensor) -> list[CaseResult]:
    """Each fast-path choice against the step without it (mixed precision on in both)."""
    half = str(dtype)[6:]
    _, nchw = step_fn(dtype, channels_last=False)
    _, nhwc = step_fn(dtype)
    t_nchw, t_nhwc = _timed(nchw, device, repeats), _timed(nhwc, device, repeats)
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        _, plain = step_fn(dtype)
        t_plain = _timed(plain, device, repeats)
    finally:
        torch.backends.cudnn.benchmark = saved
    host = raw.cpu()
    pinned = host.pin_memory() if device.type == "cuda" else host
    t_pinned = _timed(lambda: pinned.to(device, non_blocking=True), device, repeats * 4)
    t_pageable = _timed(lambda: host.to(device), device, repeats * 4)
    return [
        CaseResult("gpu_channels_last", f"{name}: training step ({half}), channels-last vs NCHW", "img/s",
                   b / t_nhwc.median, b / t_nchw.median, target=">= 1x", met=t_nhwc.median <= t_nchw.median),
        CaseResult("gpu_cudnn_benchmark", f"{name}: training step ({half}), cuDNN autotuning on vs off", "img/s",
                   b / t_nhwc.median, b / t_plain.median, target=">= 1x", met=t_nhwc.median <= t_plain.median,
                   notes=f"on: cudnn.benchmark={saved}" if device.type == "cuda" else "no cuDNN on this device"),
        CaseResult("gpu_pinned_copy", f"{name}: copying a uint8 batch to the device, pinned + non-blocking vs pageable",
                   "ms", t_pinned.median * 1e3, t_pageable.median * 1e3, higher_is_better=False,
                   notes=f"{host.numel() / 1e6:.1f} MB per batch"),
    ]


def _cpu_step_case(step_fn, device: torch.device, b: int, name: str) -> CaseResult:
    """How far a float32 step on the device is from the same step on the CPU (same weights and batch)."""
    cpu = torch.device("cpu")
    model_d, on_device = step_fn(None)
    model_c, on_cpu = step_fn(None, on=cpu)
    with _true_float32():
        t0 = time.perf_counter()
        loss_d, logits_d = on_device()
        _sync(device)
        t_device = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss_c, logits_c = on_cpu()
    t_cpu = time.perf_counter() - t0
    logit_diff = float((logits_d.cpu() - logits_c).abs().max() / logits_c.abs().max().clamp_min(1e-12))
    weights_c = dict(model_c.named_parameters())
    weight_diff = max(float((p.detach().cpu() - weights_c[k].detach()).abs().max()) for k, p in model_d.named_parameters())
    ok = logit_diff <= 1e-3 and weight_diff <= 1e-5
    return CaseResult("gpu_vs_cpu_step", f"{name}: one float32 training step (TF32 off) vs the same step on this CPU",
                      "img/s", b / t_device, b / t_cpu,
                      agreement={"max_rel_logit_diff": logit_diff, "max_abs_weight_diff_after_step": weight_diff,
                                 "loss_device": float(loss_d), "loss_cpu": float(loss_c), "ok": ok},
                      notes="one step each (the first, cuDNN autotuning included): how far GPU results are from CPU results")


def _dct_case(model, raw: torch.Tensor, device: torch.device, repeats: int, name: str) -> CaseResult:
    from blastscope.engine.tensors import to_model_input
    from blastscope.ops.dct import dct2, dct2_torch_fft, dct_matrix

    with torch.no_grad():
        z = model.front[0](to_model_input(raw)).float().contiguous()
    h, w = z.shape[-2:]
    t_h, t_w = dct_matrix(h, device=device), dct_matrix(w, device=device)

    def run(fn) -> Callable[[], None]:
        x = z.detach().requires_grad_()

        def call() -> None:
            x.grad = None
            out = fn(x)
            out.backward(torch.ones_like(out))
        return call

    with _true_float32():
        diff = float((dct2_torch_fft(z) - dct2(z, t_h, t_w)).abs().max() / z.abs().max().clamp_min(1e-12))
        fft = _timed(run(dct2_torch_fft), device, repeats)
        matrix = _timed(run(lambda x: dct2(x, t_h, t_w)), device, repeats)
    return CaseResult("gpu_dct", f"{name}: DCT layer forward + backward, torch.fft vs matrix products", "ms",
                      fft.median * 1e3, matrix.median * 1e3, higher_is_better=False,
                      agreement={"max_rel_diff": diff, "tolerance": 1e-4, "ok": diff <= 1e-4},
                      notes="DCT2d(backend='fft') uses torch.fft on a GPU; 'auto' keeps the matrix products",
                      extra={"device": name, "shape": list(z.shape)})


class _Cycle:
    """``n`` images that repeat ``base`` (no copies: the loader indexes it like the image cache)."""

    def __init__(self, base: np.ndarray, n: int) -> None:
        self.base, self.n = base, n
        self.shape = (n,) + base.shape[1:]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return self.base[int(i) % len(self.base)]


def _data_wait_case(cfg: BenchConfig, batch: np.ndarray, device: torch.device, step: Callable[[], object],
                    name: str) -> CaseResult:
    """Share of wall time a loop of training steps waits for the trainer's loader, with and without workers."""
    from torch.utils.data import DataLoader

    from blastscope.engine.sampling import AugmentedImages
    from blastscope.transforms.sdct_augment import sdct_train_transform

    from blastscope.engine.trainer import loader_workers

    b = len(batch)
    workers = max(1, loader_workers("auto", torch.device("cuda", 0)))  # what training on a GPU uses here
    steps = max(10, 3 * workers)  # well past what the workers prefetch while the first batch is made
    images = _Cycle(batch, (steps + 1) * b)
    dataset = AugmentedImages(images, np.arange(len(images)) % 2, sdct_train_transform(), seed=0, balance="none")

    def waiting(num_workers: int) -> tuple[float, float]:
        loader = DataLoader(dataset, batch_size=b, shuffle=False, num_workers=num_workers,
                            pin_memory=device.type == "cuda", persistent_workers=False, drop_last=True)
        waited = total = 0.0
        it = iter(loader)
        next(it)  # workers started, first batch ready
        t_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            try:
                x, _ = next(it)
            except StopIteration:
                break
            x = x.to(device, non_blocking=True)
            waited += time.perf_counter() - t0
            step()
            _sync(device)
        total = time.perf_counter() - t_start
        return waited / max(total, 1e-9), total

    share_w, _ = waiting(workers)
    share_0, _ = waiting(0)
    return CaseResult("gpu_data_wait", f"{name}: share of a training step waiting for data, {workers} DataLoader workers "
                      "vs none", "share", share_w, share_0, higher_is_better=False, target="<= 0.10 with workers",
                      met=share_w <= 0.10, notes=f"{steps} steps of batch {b}; augmentation on the CPU "
                      "(OpenCV), pinned memory, non-blocking copies", extra={"workers": workers, "device": name})
