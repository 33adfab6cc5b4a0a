"""Where the toolkit computes: ``train.device`` / ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``)
and mixed precision (``train.amp``: ``auto``, ``off``, ``bf16``, ``fp16``).

``auto`` is the first CUDA GPU when PyTorch sees one, else the CPU. Asking for CUDA where there is
none is an error naming what PyTorch sees. Mixed precision: ``auto`` is bf16 autocast on a GPU
that supports it, else fp16 with a gradient scaler, and off on the CPU (float32, as every figure of
the README); ``bf16`` on the CPU is allowed (PyTorch's CPU autocast) and is what the CPU tests use
to check the autocast path. Weights and checkpoints are always stored as float32 CPU tensors, so a
model trained on a GPU predicts on a CPU and the other way round.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["DeviceError", "resolve_device", "amp_dtype", "autocast", "grad_scaler", "model_device"]

AMP_MODES = ("auto", "off", "bf16", "fp16")


class DeviceError(ValueError):
    """A device that this machine does not have."""


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            built = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no usable GPU"
            raise DeviceError(f"device {spec!r} was asked for, but this PyTorch ({torch.__version__}) is {built}; "
                              "use --device cpu or auto, or install a CUDA build of torch")
        index = 0 if spec == "cuda" else spec.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)")
        return torch.device(f"cuda:{int(index)}")
    raise DeviceError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}")


def amp_dtype(device: torch.device, mode: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device`` (None: float32, no autocast)."""
    if mode not in AMP_MODES:
        raise DeviceError(f"amp must be one of {AMP_MODES}, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16" and device.type != "cuda":
        raise DeviceError("amp fp16 needs a CUDA device (on the CPU use bf16 or off)")
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None):
    """A gradient scaler for fp16 on CUDA (bf16 and float32 need none), else None."""
    if dtype is torch.float16 and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
