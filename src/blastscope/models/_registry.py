"""Model registry: a decorated entrypoint per public model id (torchvision ``register_model`` style).

An entrypoint is a small function ``name(**kwargs) -> nn.Module`` that holds the paper's
hyper-parameters; the model classes stay general. Registering a name twice raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info"]


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


def _import_all() -> None:
    # Importing the package registers every entrypoint module it lists.
    import blastscope.models  # noqa: F401
