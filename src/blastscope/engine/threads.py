"""How many threads the toolkit computes with: one per physical core this process may use.

PyTorch's default is the number of physical cores of the whole machine; on a machine shared with
other work (a lab PC, a batch node given two of its 64 cores through an affinity mask) that
oversubscribes the cores and every step waits on the others. :func:`default_threads` counts the
physical cores among the CPUs in this process's affinity mask that are idle right now;
:func:`configure_threads` sets
PyTorch's intra-op threads, OpenCV's threads and the thread count onnxruntime sessions are
created with (``--threads N`` of ``cv``, ``predict``, ``serve`` and ``bench``).
"""
from __future__ import annotations

import os
import sys

__all__ = ["physical_cores", "idle_cpus", "default_threads", "configure_threads", "onnx_threads", "worker_threads"]

_ONNX_THREADS: int | None = None


def _cpu_core_map() -> dict[int, tuple[str, str]]:
    """CPU number -> (physical package, core id), from /proc/cpuinfo (empty where unreadable)."""
    out: dict[int, tuple[str, str]] = {}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return out
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "processor" in fields:
            out[int(fields["processor"])] = (fields.get("physical id", "0"), fields.get("core id", fields["processor"]))
    return out


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (at least 1)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    cores = _cpu_core_map()
    if cores and all(c in cores for c in cpus):
        return max(1, len({cores[c] for c in cpus}))
    return max(1, len(cpus))


def _cpu_times() -> dict[int, tuple[int, int]]:
    """CPU number -> (idle, total) jiffies from /proc/stat (empty where unreadable)."""
    out = {}
    try:
        lines = open("/proc/stat").read().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            v = [int(x) for x in values]
            out[int(name[3:])] = (v[3] + (v[4] if len(v) > 4 else 0), sum(v[:8]))
    return out


def idle_cpus(seconds: float = 0.1) -> float | None:
    """How many of this process's CPUs were idle over ``seconds`` (None where /proc/stat is missing)."""
    import time

    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = set(range(os.cpu_count() or 1))
    first = _cpu_times()
    if not first:
        return None
    time.sleep(seconds)
    second = _cpu_times()
    idle = 0.0
    for c in cpus & set(first) & set(second):
        d_idle, d_total = second[c][0] - first[c][0], second[c][1] - first[c][1]
        idle += d_idle / d_total if d_total > 0 else 1.0
    return idle


def default_threads() -> int:
    """One thread per physical core available (:func:`physical_cores`) that other work is not
    using right now: the CPUs idle over 0.1 s (from /proc/stat; not the load average, which sits
    near 1 on an idle VM), rounded, at least 1, at most the physical cores. Measured on this 2-core
    machine with one other busy process: 2 threads 9.5-10.7 s, 1 thread 6.5-8.0 s for a 500-cell
    ``predict``; on an idle machine both cores are used."""
    cores = physical_cores()
    idle = idle_cpus()
    if idle is None:
        return cores
    return max(1, min(cores, int(idle + 0.5)))


def configure_threads(threads: int | None = None) -> int:
    """Use ``threads`` (default :func:`default_threads`) for PyTorch, OpenCV and onnxruntime; returns it."""
    global _ONNX_THREADS
    n = int(threads) if threads is not None else default_threads()
    if n < 1:
        raise ValueError(f"threads must be >= 1, got threads={threads}")
    import cv2

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:  # not imported yet (``predict --backend onnx`` never imports it): torch reads these at import
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    cv2.setNumThreads(n)
    _ONNX_THREADS = n
    return n


def onnx_threads() -> int:
    """The intra-op thread count for new onnxruntime sessions (0: onnxruntime's default)."""
    return _ONNX_THREADS or 0


def worker_threads() -> int:
    """How many threads work may be spread over: ``--threads`` where it was given (:func:`configure_threads`),
    else one per physical core (onnxruntime's side-by-side sessions, ``predict``'s file decoding)."""
    return max(1, onnx_threads() or physical_cores())
