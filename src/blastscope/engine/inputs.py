"""Model inputs: how a batch of cached uint8 images becomes the tensor a model consumes.

Most models take RGB in [0, 1] and do their own preprocessing as layers (stain deconvolution,
DCT). Some papers put a *fitted* step in front of the network (Spike-PCA-ResNet: edge-latency
coding, PCA reconstruction and z-scoring fitted on the training fold). Such a step implements
:class:`ModelInput`: ``fit`` sees the training fold's unaugmented images only, ``__call__``
converts a (possibly augmented) batch, and ``to_arrays``/``from_arrays`` store the fitted state
as plain arrays in safetensors (never pickle).
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np
import torch

from blastscope.engine.tensors import to_model_input

__all__ = ["ModelInput", "RGBInput", "build_input", "INPUTS"]


class ModelInput(Protocol):
    def fit(self, images: np.ndarray) -> "ModelInput": ...
    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...
    def to_arrays(self) -> dict[str, np.ndarray]: ...
    def load_arrays(self, arrays: dict[str, np.ndarray]) -> "ModelInput": ...


class RGBInput:
    """uint8 B x H x W x 3 -> float32 B x 3 x H x W in [0, 1] (nothing to fit)."""

    def fit(self, images: np.ndarray) -> "RGBInput":
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return to_model_input(batch)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> "RGBInput":
        return self


def _spike(**kwargs: Any) -> ModelInput:
    from blastscope.transforms.spike_input import SpikeInput

    return SpikeInput(**kwargs)


INPUTS: dict[str, Callable[..., ModelInput]] = {"rgb": RGBInput, "spike": _spike}


def build_input(name: str = "rgb", **kwargs: Any) -> ModelInput:
    try:
        factory = INPUTS[name]
    except KeyError:
        raise ValueError(f"unknown model input {name!r}; known: {', '.join(INPUTS)}") from None
    return factory(**kwargs)
