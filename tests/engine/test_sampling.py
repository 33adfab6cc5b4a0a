"""Epoch order and oversampling (Gehlot et al. 2020 section 4.3)."""
from __future__ import annotations

import numpy as np

from blastscope.engine.sampling import AugmentedImages, balanced_order, epoch_order


def test_oversampling_balances_every_class():
    labels = np.array([0] * 10 + [1] * 25 + [2] * 4)
    order = balanced_order(labels, np.random.default_rng(0))
    counts = np.bincount(labels[order])
    assert (counts == 25).all()
    assert set(order[labels[order] == 1]) == set(np.flatnonzero(labels == 1))  # majority used once each
    minority = np.bincount(order[labels[order] == 2], minlength=39)[labels == 2]
    assert minority.min() >= 6 and minority.max() <= 7  # whole copies plus a remainder, no image skipped


def test_epoch_order_reproducible():
    labels = np.array([0, 0, 1, 1, 1])
    assert (epoch_order(labels, "oversample", 3, 7) == epoch_order(labels, "oversample", 3, 7)).all()
    assert len(epoch_order(labels, "none", 3, 7)) == 5


def test_augmentation_draws_depend_on_seed_epoch_position():
    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1])

    def noise(image, rng):
        return np.clip(image.astype(int) + rng.integers(0, 50), 0, 255).astype(np.uint8)

    a = AugmentedImages(images, labels, noise, seed=1)
    b = AugmentedImages(images, labels, noise, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert all((a[j][0] == b[j][0]).all() for j in range(len(a)))
    mask = np.array([True, False, False, False, False, False])
    c = AugmentedImages(images, labels, noise, seed=1, augment_mask=mask)
    for j in range(len(c)):
        i = int(c.order[j])
        if not mask[i]:
            assert (c[j][0].numpy() == images[i]).all()
