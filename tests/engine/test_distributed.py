"""Tests for blastscope.engine.distributed: sharding, synced BatchNorm, and 2-process DDP training."""
import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from blastscope.config import OptimConfig, ScheduleConfig, TrainConfig
from blastscope.engine import distributed as ddp
from blastscope.engine.distributed import (
    DistributedBatchNorm2d,
    backend_for,
    launch,
    rank_device,
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


def test_backend_is_nccl_for_gpus_and_gloo_otherwise(monkeypatch):
    assert backend_for("cpu") == "gloo" and backend_for(torch.device("cpu")) == "gloo"
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)
    assert backend_for("cuda:0") == "nccl"
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: False)
    with pytest.raises(ValueError, match="needs NCCL, which this PyTorch build lacks"):
        backend_for("cuda")


def test_each_rank_trains_on_its_own_gpu(monkeypatch):
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert rank_device(cuda) == cuda and rank_device(cpu) == cpu  # not data-parallel: the device asked for
    monkeypatch.setattr(ddp, "is_distributed", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_device(cuda) == torch.device("cuda", 1) and rank_device(cpu) == cpu


def test_gpu_launch_needs_one_gpu_per_process():
    with pytest.raises(ValueError, match=f"--devices {torch.cuda.device_count() + 1} on GPUs needs .* GPUs .*this machine has "
                                         f"{torch.cuda.device_count()}"):
        launch(print, torch.cuda.device_count() + 1, backend="nccl")
    with pytest.raises(ValueError, match="backend must be gloo or nccl"):
        launch(print, 1, backend="mpi")


def _two_process_equivalence(tmp_path, device: str, backend: str, rtol: float, atol: float) -> None:
    torch.manual_seed(0)
    model = BasicNetwork(3, 2, widths=(4, 4, 8, 8, 8, 8))
    images, labels = _data(21, 40, 1)
    val_images, val_labels = _data(7, 40, 2)
    cfg = TrainConfig(epochs=2, batch_size=8, seed=3, eval_batch_size=4, device=device, amp="off",
                      deterministic=device != "cpu",
                      optimizer=OptimConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=1e-2),
                      schedule=ScheduleConfig(name="none"))
    transform = sdct_train_transform()
    one, two = tmp_path / "one", tmp_path / "two"
    fit(copy.deepcopy(model), images, labels, val_images, val_labels, cfg, one, transform=transform)
    launch(fit, 2, args=(copy.deepcopy(model), images, labels, val_images, val_labels, cfg, two),
           kwargs={"transform": transform}, threads=1, backend=backend)
    a, b = load_file(str(one / "best.safetensors")), load_file(str(two / "best.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=rtol, atol=atol, msg=k)
    h1, h2 = (one / "history.csv").read_text().splitlines(), (two / "history.csv").read_text().splitlines()
    assert h1[0] == h2[0]
    for r1, r2 in zip(h1[1:], h2[1:]):
        np.testing.assert_allclose(np.array(r2.split(","), float), np.array(r1.split(","), float), rtol=rtol, atol=atol / 10)
    assert (two / "fit.json").exists() and not (two / "state.json").exists()


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """Invariant: DDP over 2 processes (global batch 8 = 2 x 4, synced BatchNorm, augmentation seeds
    by global position) gives the weights and history of one process with batch 8, up to float rounding."""
    _two_process_equivalence(tmp_path, "cpu", "gloo", rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_with_nccl_match_one_gpu_with_the_same_global_batch(tmp_path):
    """The same invariant on 2 GPUs (NCCL, one process per GPU) against one GPU; cuDNN's TF32
    convolutions round more coarsely than the CPU, hence the wider tolerance."""
    _two_process_equivalence(tmp_path, "cuda", "nccl", rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_global_batchnorm_statistics_stay_float32_under_mixed_precision(monkeypatch, dtype):
    """A GPU step under autocast hands BatchNorm half-precision maps; 3 cells at 350 px already hold
    more values per channel than fp16 can count. The statistics are computed in float32 (a one-rank
    group here: the all-reduce is the identity) and equal F.batch_norm's on the float32 maps."""
    import torch.nn.functional as F

    monkeypatch.setattr(ddp, "is_distributed", lambda: True)
    monkeypatch.setattr(ddp._AllReduceSum, "apply", staticmethod(lambda t, group: t))
    monkeypatch.setattr(ddp, "_bn_group", lambda: None)
    x = torch.randn(3, 2, 174, 174).mul(2).add(1).to(dtype)  # 90,828 values per channel
    bn = DistributedBatchNorm2d(2).train()
    ref = nn.BatchNorm2d(2).train()
    y = bn(x)
    expected = F.batch_norm(x.float(), ref.running_mean, ref.running_var, ref.weight, ref.bias, True, 0.1, ref.eps)
    assert y.dtype == dtype and torch.isfinite(bn.running_var).all()
    torch.testing.assert_close(y.float(), expected, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, ref.running_var, atol=1e-4, rtol=1e-4)
