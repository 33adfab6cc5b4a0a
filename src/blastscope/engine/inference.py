"""Batched forward passes over cached image arrays: log-probabilities and spectral features."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from blastscope.engine.progress import ProgressFactory, no_progress
from blastscope.engine.tensors import flush_denormal, to_model_input

__all__ = ["predict_arrays"]


def predict_arrays(model: nn.Module, images: np.ndarray, batch_size: int = 64, spectral: bool = False,
                   progress: ProgressFactory = no_progress, desc: str = "predict",
                   input_fn: Callable[[torch.Tensor], torch.Tensor] = to_model_input) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (log-probabilities N x K, spectral-averaged features N x P or None).

    images: N x H x W x 3 uint8; ``input_fn`` turns a uint8 batch into the model's input.
    Spectral features are the mean over feature maps at each
    position of ``model.forward_features`` (Gehlot et al. 2020 section 3.4), or the features
    themselves where they are a vector already.
    The model's 4-D weights are moved to channels-last memory (same values; faster convolutions
    on CPU) and denormal floats are flushed to zero while predicting (see ``flush_denormal``).
    """
    with torch.no_grad():  # outside inference mode, so the moved weights stay ordinary tensors
        model.to(memory_format=torch.channels_last)
    with flush_denormal(), torch.inference_mode():
        return _predict(model, images, batch_size, spectral, progress, desc, input_fn)


def _predict(model: nn.Module, images: np.ndarray, batch_size: int, spectral: bool, progress: ProgressFactory,
             desc: str, input_fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
    from blastscope.layers.spectral_average import SpectralAverage, spectral_mode

    was_training = model.training
    model.eval()
    averager = SpectralAverage(spectral_mode(model))
    logps, feats = [], []
    with progress(total=len(images), desc=desc, leave=False) as bar:
        from blastscope.engine.device import model_device

        device = model_device(model)  # the model's device (a CPU, or the GPU it was trained on)
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            x = input_fn(batch.to(device, non_blocking=True) if device.type != "cpu" else batch)
            maps = model.forward_features(x)
            logps.append(torch.log_softmax(model.forward_head(maps).float(), dim=1).cpu().numpy())
            if spectral:  # models whose features are already a vector (e.g. a fusion layer's) give that vector
                feats.append((averager(maps) if maps.dim() == 4 else maps).reshape(len(x), -1).float().cpu().numpy())
            bar.update(len(x))
    model.train(was_training)
    k = getattr(model, "num_classes", None)
    out = np.concatenate(logps) if logps else np.zeros((0, k or 0), np.float32)
    return out, (np.concatenate(feats) if spectral and feats else None)
