"""Epoch order, class balancing and per-sample randomness, all reproducible from (seed, epoch).

Gehlot et al. 2020 section 4.3: "images of the minority class are duplicated, such that the total
sample count of both the classes is the same". ``balanced_order`` generalises this to any number
of classes: every class is sampled up to the largest class count (whole copies plus a random
remainder without replacement), then the epoch is shuffled.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["balanced_order", "epoch_order", "AugmentedImages"]


def balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.max()
    parts = []
    for c, n in zip(classes, counts):
        idx = np.flatnonzero(labels == c)
        whole, rest = divmod(int(target), int(n))
        parts.append(np.tile(idx, whole))
        if rest:
            parts.append(rng.choice(idx, size=rest, replace=False))
    order = np.concatenate(parts)
    return order[rng.permutation(len(order))]


def epoch_order(labels: np.ndarray, balance: str, seed: int, epoch: int) -> np.ndarray:
    """Indices into the training set for ``epoch`` (same seed and epoch -> same order)."""
    rng = np.random.default_rng([seed, epoch, 0xB1A5])
    if balance == "oversample":
        return balanced_order(np.asarray(labels), rng)
    if balance == "none":
        return rng.permutation(len(labels))
    raise ValueError(f"balance must be 'oversample' or 'none', got balance={balance!r}")


class AugmentedImages(Dataset):
    """Item ``j`` of an epoch: image ``order[j]`` augmented with ``rng = (seed, epoch, j)``.

    images: N x H x W x 3 uint8 (a memory map is fine); returns (uint8 H x W x 3 tensor, label).
    ``augment_mask`` (optional, bool per image) limits augmentation to some images (LeukoNet's
    "normal aug" augments only the minority class).
    ``positions`` (optional, set per epoch by data-parallel training) restricts the dataset to
    those positions of the epoch order: item ``i`` is then position ``j = positions[i]``, with the
    same image and the same augmentation seed as item ``j`` of the whole epoch.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None, seed: int = 0,
                 balance: str = "oversample", augment_mask: np.ndarray | None = None):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.seed = seed
        self.balance = balance
        self.augment_mask = augment_mask
        self.positions: np.ndarray | None = None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = epoch_order(self.labels, self.balance, self.seed, epoch)

    def __len__(self) -> int:
        return len(self.order) if self.positions is None else len(self.positions)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        if self.positions is not None:
            j = int(self.positions[j])
        i = int(self.order[j])
        image = np.array(self.images[i])
        if self.transform is not None and (self.augment_mask is None or self.augment_mask[i]):
            image = self.transform(image, np.random.default_rng([self.seed, self.epoch, j]))
        return torch.from_numpy(np.ascontiguousarray(image)), int(self.labels[i])
