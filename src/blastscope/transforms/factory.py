"""Training transforms by the name a recipe uses (``data.augment``)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from blastscope.transforms.compose import RandomChoice

__all__ = ["build_transform", "TRANSFORMS", "FittedChoice"]


def _fittable(transform: object) -> bool:
    # a method, not an attribute of that name (RandomRotation has a boolean ``fit``)
    return callable(getattr(transform, "fit", None))


class FittedChoice(RandomChoice):
    """:class:`RandomChoice` whose ``fit(images)`` fits every member that has a ``fit`` method.

    ``images``: N x H x W x 3 uint8 (the fold's unaugmented training images). Returns self.
    """

    def fit(self, images: np.ndarray) -> FittedChoice:
        for t in self._items:
            if _fittable(t):
                t.fit(images)
        return self


def _sdct():
    from blastscope.transforms.sdct_augment import sdct_train_transform

    return sdct_train_transform()


def _spike():
    from blastscope.transforms.spike_augment import spike_train_transform

    return spike_train_transform()


def _leukemianet():
    from blastscope.transforms.conventional import leukemianet_conventional_transform

    return leukemianet_conventional_transform()


def _leukemianet_pca():
    """LeukemiaNet "Dataset 2" on the fly (LeukemiaNet paper, sections 3.1 and 4.3).

    Dataset 2 holds the originals, their conventional copies and PCA-colour copies of the
    originals (not PCA on top of the conventional copies; see
    :mod:`blastscope.transforms.expand`). Per drawn image this applies ONE of the ten
    conventional augmentations or the PCA colour shift, uniformly (1/11 each). The PCA
    eigen-decomposition is fitted on the fold's training images (``build_transform``).
    Unlike the offline set, every drawn image is augmented (no unaugmented originals).
    """
    from blastscope.transforms.conventional import leukemianet_conventional_augmentations
    from blastscope.transforms.pca_colour import PCAColourAugment

    return FittedChoice({**leukemianet_conventional_augmentations(), "pca_colour": PCAColourAugment()})


TRANSFORMS: dict[str, Callable] = {"sdct": _sdct, "spike": _spike, "leukemianet": _leukemianet,
                                   "leukemianet_pca": _leukemianet_pca, "none": lambda: None}


def build_transform(name: str, train_images=None):
    """The training transform named ``name`` (``none`` -> ``None``).

    A transform with a ``fit`` method (fitted on the training set, e.g. PCA colour augmentation)
    is fitted on ``train_images`` (N x H x W x 3 uint8, the fold's unaugmented training images).
    """
    try:
        transform = TRANSFORMS[name]()
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(TRANSFORMS)}") from None
    if transform is not None and _fittable(transform):
        if train_images is None:
            raise ValueError(f"augmentation {name!r} must be fitted on the training images")
        transform.fit(train_images)
    return transform
