"""Spike latency coding case: the batched coder vs one image at a time.

Optimised: :func:`blastscope.ops.latency.intensity_to_latency` on the whole batch. Reference: the
per-image loop of SpykeTorch's ``Intensity2Latency`` style (sort one image, build its T cumulative
spike maps one step at a time), with our latency definition so both give the same spikes.
Input: four Gabor-like response maps per image (Noshad & Fallahi 2021 use 4 orientations on
100 x 100 cells), non-negative with a black background share of zeros.
"""
from __future__ import annotations


import torch

from blastscope.bench.config import BenchConfig
from blastscope.bench.result import CaseResult
from blastscope.bench.timing import SETTLE_S, interleaved

__all__ = ["latency_loop", "run_latency"]

REPEATS = 5


def latency_loop(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """One image at a time: rank by a sort, ``floor(rank * T / n)``, then T spike maps."""
    out = []
    for image in x:
        flat = image.flatten()
        n = int((flat > 0).sum())
        ascending = torch.sort(flat).values
        rank = flat.numel() - torch.searchsorted(ascending, flat, right=True)  # values strictly greater
        latency = torch.where(flat > 0, torch.div(rank * timesteps, max(n, 1), rounding_mode="floor"),
                              torch.full_like(rank, timesteps))
        out.append(torch.stack([(latency <= t).reshape(image.shape) for t in range(timesteps)]))
    return torch.stack(out)


def run_latency(cfg: BenchConfig) -> CaseResult:
    from blastscope.ops.latency import intensity_to_latency

    g = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.latency_batch, *cfg.latency_shape, generator=g) ** 3
    x[x < 0.05] = 0  # background and weak responses never fire
    spikes, reference = intensity_to_latency(x, cfg.timesteps), latency_loop(x, cfg.timesteps)
    # interleaved repeats after an idle pause each, median each: a load spike hits both paths
    fast, slow_t = interleaved(lambda: intensity_to_latency(x, cfg.timesteps), lambda: latency_loop(x, cfg.timesteps),
                               repeats=REPEATS)
    t_fast, t_slow = fast.median, slow_t.median
    mismatches = int((spikes != reference).sum())
    b = cfg.latency_batch
    return CaseResult(
        "latency", f"First-spike latency coding, batched vs per image ({b} x {'x'.join(map(str, cfg.latency_shape))}, "
                   f"T={cfg.timesteps})", "img/s", b / t_fast, b / t_slow, target=">= 20x reference",
        met=t_slow / t_fast >= 20.0, agreement={"mismatched_spikes": mismatches, "tolerance": 0, "ok": mismatches == 0},
        notes=f"median of {REPEATS} interleaved runs each, {SETTLE_S * 1e3:.0f} ms idle before each; batched: one NumPy "
              "sort of the values' bit patterns per image in blocks of 8 on the intra-op threads, one comparison per "
              "spike map; reference: torch.sort per image")
