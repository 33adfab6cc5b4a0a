"""Wall-clock timing and the machine's sgemm throughput (the roofline the model steps are compared with)."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

__all__ = ["Timing", "interleaved", "load_average", "sgemm_gflops", "time_call"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median (reported) and the minimum of ``repeats`` timed calls."""

    median: float
    best: float
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def time_call(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats} warmup={warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return Timing(median=times[len(times) // 2], best=times[0], repeats=repeats)


SETTLE_S = 0.1
"""Idle seconds before each timed call of :func:`interleaved`. After a parallel region PyTorch's
OpenMP threads keep spinning (GNU OpenMP's default spin count) and hold the cores: NumPy work
started right after a torch call ran up to 1.5x slower here, the effect fading over ~100 ms. A
path timed right after the other would pay for the other's threads."""


def interleaved(first: Callable[[], object], second: Callable[[], object], repeats: int = 3,
                settle: float = SETTLE_S) -> tuple[Timing, Timing]:
    """Time two paths alternately (``first, second, first, ...``): a load change hits both, not one.

    Each timed call starts after ``settle`` idle seconds, so neither inherits the other's
    spinning thread pool (see :data:`SETTLE_S`).
    """
    if repeats < 1:
        raise ValueError(f"need repeats >= 1, got repeats={repeats}")
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    result = []
    for t in times:
        t.sort()
        result.append(Timing(median=t[len(t) // 2], best=t[0], repeats=repeats))
    return result[0], result[1]


def sgemm_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Best float32 ``n x n @ n x n`` throughput (GFLOP/s, ``2 n^3`` per product) over ~``seconds``.

    Runs on torch's current thread count (its BLAS, MKL here), the roofline the model steps are
    reported against.
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best, t_end = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * n**3 / dt / 1e9)
        if time.perf_counter() > t_end:
            return best


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none); > cores means a loaded machine."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None
