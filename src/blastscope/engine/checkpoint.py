"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A training state is two files written in order: ``state-<epoch>.safetensors`` (model, optimiser
tensors, RNG state) and then ``state.json`` (epoch, history, scheduler, best score, and the name
of the tensor file), which is the commit point. A kill between the two leaves the previous
``state.json`` valid. ``torch.load`` is never used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from blastscope.engine.atomic import atomic_write, atomic_write_json

__all__ = ["save_weights", "load_weights", "save_state", "load_state", "CheckpointError"]


class CheckpointError(ValueError):
    """A weights or state file that does not fit the model; the message names the file."""


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    path = Path(path)
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: weights file not found") from None
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    for k, v in tensors.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{path}: tensor {k!r} has shape {tuple(v.shape)}, the model expects {tuple(expected[k].shape)}")
    model.load_state_dict(tensors)
    return model


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_state(directory: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
               extra: dict[str, Any]) -> None:
    directory = Path(directory)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    name = f"state-{epoch:04d}.safetensors"
    atomic_write(directory / name, lambda p: save_file(tensors, str(p)))
    atomic_write_json(directory / "state.json", {"epoch": epoch, "tensors": name, "optimizer": opt_meta, **extra})
    for old in directory.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore the last committed state into ``model``/``optimizer``; ``None`` if there is none."""
    directory = Path(directory)
    meta_path = directory / "state.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(directory / meta["tensors"]))
    except Exception as e:
        raise CheckpointError(f"{directory}: training state is unreadable ({e}); delete the folder to start over") from None
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    opt = meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    for pid, values in opt["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return meta
