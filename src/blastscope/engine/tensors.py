"""Batch conversion and CPU float settings shared by training and inference."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["to_model_input", "flush_denormal", "denormals_flushed"]


def to_model_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 B x H x W x C -> float32 B x C x H x W in [0, 1], channels-last in memory (faster convs on CPU)."""
    if batch.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 batch, got {batch.dtype}")
    return batch.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def denormals_flushed() -> bool:
    """Whether this thread currently treats float32 denormals as zero (probed with one multiply)."""
    probe = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal (1.18e-38)
    return bool((probe * 1.0)[0] == 0)


@contextmanager
def flush_denormal() -> Iterator[bool]:
    """Flush denormal floats to zero (x86 FTZ/DAZ) inside the block; yields whether it is supported.

    Denormals (|x| < 1.18e-38 in float32) are orders of magnitude slower to compute with on x86;
    flushing them changes results only below that magnitude (the training and inference entries
    use this; a test checks that results agree with and without it within float32 rounding).
    The setting is per thread: it holds for the calling thread, and for intra-op worker threads
    only if the pool is created inside the block (Linux threads inherit the flag when created).
    The calling thread's previous setting is restored on exit; entering at the trainer and
    inference entry, not at import time, keeps it out of code that did not ask for it.
    """
    before = denormals_flushed()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported and not before:
            torch.set_flush_denormal(False)
