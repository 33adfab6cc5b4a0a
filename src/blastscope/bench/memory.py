"""Peak resident memory of one SDCT-Net training step, measured in a fresh process.

``python -m blastscope.bench.memory --path optimised --size 350 --batch 64`` builds the model,
runs one training step on a random uint8 batch and prints JSON with the process's resident set
before the step and its peak. The peak is ``VmHWM`` from ``/proc/self/status`` (the high-water
mark of this process image): ``resource.getrusage(...).ru_maxrss`` survives ``exec`` on Linux, so
a child started from a large benchmark process would report the parent's peak. Where ``/proc`` is
missing, ``ru_maxrss`` is the fallback.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

__all__ = ["measure", "measure_in_subprocess"]


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_now_kb() -> int:
    return _status_kb("VmRSS") or 0


def _peak_kb() -> int:
    import resource

    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(path: str, size: int, batch: int) -> dict:
    """Run one step of the ``optimised`` or ``reference`` path in this process; memory in GB."""
    import numpy as np
    import torch

    from blastscope.bench.reference import reference_from
    from blastscope.bench.training import _reference_input, _reference_step, _sgd
    from blastscope.engine.tensors import flush_denormal, to_model_input
    from blastscope.engine.trainer import train_step
    from blastscope.models import create_model

    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    y = torch.arange(batch) % 2
    model = create_model("sdct_net")
    if path == "reference":
        model = reference_from(model, size)
        opt = _sgd(model.parameters())
        baseline = _rss_now_kb()
        _reference_step(model, _reference_input(images), y, opt)
    else:
        model = model.to(memory_format=torch.channels_last)
        opt = _sgd(model.parameters())
        baseline = _rss_now_kb()
        with flush_denormal():
            train_step(model, to_model_input(torch.from_numpy(images)), y, opt)
    peak = _peak_kb()
    return {"path": path, "baseline_gb": baseline / 2**20, "peak_gb": peak / 2**20}


def measure_in_subprocess(path: str, size: int, batch: int, timeout: float = 900.0) -> dict:
    """:func:`measure` in a new Python process (so earlier allocations do not count)."""
    cmd = [sys.executable, "-m", "blastscope.bench.memory", "--path", path, "--size", str(size), "--batch", str(batch)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory measurement failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", choices=["optimised", "reference"], default="optimised")
    parser.add_argument("--size", type=int, default=350)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc malloc at its defaults (the command line keeps freed memory)")
    args = parser.parse_args(argv)
    if not args.default_allocator:
        from blastscope.engine.allocator import keep_freed_memory

        keep_freed_memory()  # as the command line does before training
    sys.stdout.write(json.dumps(measure(args.path, args.size, args.batch)) + "\n")


if __name__ == "__main__":
    main()
