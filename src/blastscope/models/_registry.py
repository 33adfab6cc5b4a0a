"""Model registry: a decorated entrypoint per public model id (torchvision ``register_model`` style).

An entrypoint is a small function ``name(**kwargs) -> nn.Module`` that holds the paper's
hyper-parameters; the model classes stay general. Registering a name twice raises.
:func:`check_input_size` tells before training whether a model takes a given image size (a
model's downsampling sets a minimum; a flattening head fixes the size).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = [
    "ModelInfo", "register_model", "create_model", "list_models", "model_info",
    "input_size_problem", "smallest_square_input", "check_input_size",
]


@dataclass(frozen=True)
class ModelInfo:
    """What a registered entrypoint promises about its model.

    input_size: (channels, height, width) the paper uses.
    paper: short citation, e.g. "Gehlot et al. 2020, Table 3".
    """

    name: str
    fn: Callable[..., nn.Module]
    input_size: tuple[int, int, int]
    paper: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, input_size: tuple[int, int, int], paper: str) -> Callable:
    """Decorator registering ``fn`` under its ``__name__``; a duplicate name raises ``ValueError``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(name=name, fn=fn, input_size=tuple(input_size), paper=paper)
        return fn

    return wrap


def model_info(name: str) -> ModelInfo:
    _import_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override the entrypoint's defaults."""
    return model_info(name).fn(**kwargs)


def list_models() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def input_size_problem(model: nn.Module, shape: tuple[int, int, int]) -> str | None:
    """``None`` if ``model`` runs on one C x H x W image, else the error it raises (first line).

    The probe is a 1 x C x H x W batch of 0.5 in eval mode under ``torch.no_grad``; the model's
    training flag is restored and no parameter or buffer changes.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.full((1, *shape), 0.5))
    except (RuntimeError, ValueError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        model.train(was_training)
    return None


def smallest_square_input(model: nn.Module, in_channels: int, low: int, high: int) -> int | None:
    """Smallest side ``s`` in ``(low, high]`` with which ``model`` runs on ``s x s`` images.

    Assumes that a model taking ``s x s`` takes every larger size (true for conv/pool stacks ending
    in global pooling); ``None`` when ``high`` fails too (e.g. a head sized for one input size).
    """
    if low < 0 or high <= low:
        raise ValueError(f"need 0 <= low < high, got low={low} high={high}")
    if input_size_problem(model, (in_channels, high, high)) is not None:
        return None
    while high - low > 1:  # invariant: low fails (or is the lower bound), high works
        mid = (low + high) // 2
        if input_size_problem(model, (in_channels, mid, mid)) is None:
            high = mid
        else:
            low = mid
    return high


def check_input_size(name: str, side: int, in_channels: int | None = None, **kwargs) -> None:
    """Raise ``ValueError`` unless model ``name`` (built with ``kwargs``) runs on ``side x side`` images.

    The message names the model, the size and the smallest size that works (searched up to twice
    ``side`` or the paper's size), or the model's own error when no larger size works either.
    ``in_channels`` defaults to the registered input size's. The global torch RNG is left as it was.
    """
    info = model_info(name)
    in_channels = in_channels or info.input_size[0]
    with torch.random.fork_rng(devices=[]):
        model = create_model(name, **kwargs)
        problem = input_size_problem(model, (in_channels, side, side))
        if problem is None:
            return
        smallest = smallest_square_input(model, in_channels, side, max(2 * side, *info.input_size[1:]))
    if smallest is not None:
        raise ValueError(f"model {name!r} needs images of at least {smallest} x {smallest} pixels, but the data are "
                         f"prepared at {side} x {side} (data.resize, else data.canvas); set e.g. data.resize={smallest} "
                         f"(the paper uses {info.input_size[1]} x {info.input_size[2]}). The model fails with: {problem}")
    raise ValueError(f"model {name!r} cannot take the {side} x {side} images the data are prepared at (data.resize, "
                     f"else data.canvas): {problem}")


def _import_all() -> None:
    # Importing the package registers every entrypoint module it lists.
    import blastscope.models  # noqa: F401
