"""Training transforms by the name a recipe uses (``data.augment``)."""
from __future__ import annotations

from typing import Callable

__all__ = ["build_transform", "TRANSFORMS"]


def _sdct():
    from blastscope.transforms.sdct_augment import sdct_train_transform

    return sdct_train_transform()


def _spike():
    from blastscope.transforms.spike_augment import spike_train_transform

    return spike_train_transform()


def _leukemianet():
    from blastscope.transforms.conventional import leukemianet_conventional_transform

    return leukemianet_conventional_transform()


TRANSFORMS: dict[str, Callable] = {"sdct": _sdct, "spike": _spike, "leukemianet": _leukemianet, "none": lambda: None}


def build_transform(name: str, train_images=None):
    """The training transform named ``name`` (``none`` -> ``None``).

    A transform with a ``fit`` method (fitted on the training set, e.g. PCA colour augmentation)
    is fitted on ``train_images`` (N x H x W x 3 uint8, the fold's unaugmented training images).
    """
    try:
        transform = TRANSFORMS[name]()
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(TRANSFORMS)}") from None
    if transform is not None and hasattr(transform, "fit"):
        if train_images is None:
            raise ValueError(f"augmentation {name!r} must be fitted on the training images")
        transform.fit(train_images)
    return transform
