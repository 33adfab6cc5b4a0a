"""Batch conversion shared by training and inference."""
from __future__ import annotations

import torch

__all__ = ["to_model_input"]


def to_model_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 B x H x W x C -> float32 B x C x H x W in [0, 1], channels-last in memory (faster convs on CPU)."""
    if batch.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 batch, got {batch.dtype}")
    return batch.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
