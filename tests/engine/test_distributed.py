"""Tests for blastscope.engine.distributed: sharding, synced BatchNorm, and 2-process DDP training."""
import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from blastscope.config import OptimConfig, ScheduleConfig, TrainConfig
from blastscope.engine.distributed import (
    DistributedBatchNorm2d,
    launch,
    shard_positions,
    sync_batchnorm,
)
from blastscope.engine.trainer import fit
from blastscope.models.base_network import BasicNetwork
from blastscope.transforms.sdct_augment import sdct_train_transform


@pytest.mark.parametrize("n_items,batch,world", [(50, 8, 2), (16, 8, 2), (7, 8, 2), (30, 6, 3), (12, 4, 4)])
def test_shards_partition_every_global_batch(n_items, batch, world):
    """Invariant: for each global batch b, the ranks' b-th local batches are disjoint and together
    are exactly the positions the single-process loader puts in batch b (drop_last when n > batch)."""
    shards = [shard_positions(n_items, batch, r, world) for r in range(world)]
    sizes = shards[0][1]
    single = list(range(n_items))
    expected = [single[i:i + batch] for i in range(0, n_items, batch)]
    if n_items > batch:
        expected = [b for b in expected if len(b) == batch]
    assert sizes == [len(b) for b in expected]
    local = batch // world
    for b, want in enumerate(expected):
        got = np.concatenate([pos[b * local:(b + 1) * local] for pos, _ in shards])
        assert sorted(got.tolist()) == want


def test_shard_positions_rejects_indivisible_batch_and_too_few_items():
    with pytest.raises(ValueError, match="divisible"):
        shard_positions(20, 8, 0, 3)
    with pytest.raises(ValueError, match="cannot be shared"):
        shard_positions(1, 8, 0, 2)


def test_sync_batchnorm_swaps_class_and_keeps_parameters():
    model = BasicNetwork(3, 2, widths=(4, 4, 4, 4, 4, 4))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [id(p) for p in model.parameters()]
    with sync_batchnorm(model):
        assert all(type(m) is DistributedBatchNorm2d for m in bns)
        x = torch.randn(4, 3, 40, 40)
        out = model(x)  # no process group: plain BatchNorm behaviour
        assert out.shape == (4, 2)
    assert all(type(m) is nn.BatchNorm2d for m in bns)
    assert [id(p) for p in model.parameters()] == before


def _data(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    labels = rng.integers(0, 2, n)
    labels[:3] = 0
    labels[3:] = np.where(rng.random(n - 3) < 0.7, 1, labels[3:])  # imbalanced: oversampling is exercised
    for i in range(n):
        r = size // 4 + int(labels[i]) * 4
        yy, xx = np.mgrid[:size, :size]
        disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < r**2
        images[i][disc] = rng.integers(60, 220, 3)
    return images, labels


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """Invariant: DDP over 2 processes (global batch 8 = 2 x 4, synced BatchNorm, augmentation seeds
    by global position) gives the weights and history of one process with batch 8, up to float rounding."""
    torch.manual_seed(0)
    model = BasicNetwork(3, 2, widths=(4, 4, 8, 8, 8, 8))
    images, labels = _data(21, 40, 1)
    val_images, val_labels = _data(7, 40, 2)
    cfg = TrainConfig(epochs=2, batch_size=8, seed=3, eval_batch_size=4,
                      optimizer=OptimConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=1e-2),
                      schedule=ScheduleConfig(name="none"))
    transform = sdct_train_transform()
    one, two = tmp_path / "one", tmp_path / "two"
    fit(copy.deepcopy(model), images, labels, val_images, val_labels, cfg, one, transform=transform)
    launch(fit, 2, args=(copy.deepcopy(model), images, labels, val_images, val_labels, cfg, two),
           kwargs={"transform": transform}, threads=1)
    a, b = load_file(str(one / "best.safetensors")), load_file(str(two / "best.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    h1, h2 = (one / "history.csv").read_text().splitlines(), (two / "history.csv").read_text().splitlines()
    assert h1[0] == h2[0]
    for r1, r2 in zip(h1[1:], h2[1:]):
        np.testing.assert_allclose(np.array(r2.split(","), float), np.array(r1.split(","), float), rtol=1e-4, atol=1e-6)
    assert (two / "fit.json").exists() and not (two / "state.json").exists()
