"""Tests for blastscope.ops.latency (batched intensity-to-latency coding)."""
import numpy as np
import pytest
import torch

from blastscope.ops.latency import (
    first_spike_latency,
    intensity_to_latency,
    latency_to_intensity,
    spike_latency,
)


def _one_image_reference(image: np.ndarray, timesteps: int) -> np.ndarray:
    """Straightforward per-image coding: spikes[t] holds pixels whose rank falls in bins 0..t.

    rank = number of non-zero values strictly greater; bin = floor(rank * T / n).
    """
    values = image.reshape(-1)
    n = int((values > 0).sum())
    spikes = np.zeros((timesteps, values.size), dtype=bool)
    for i, v in enumerate(values):
        if v <= 0:
            continue
        rank = sum(1 for u in values if u > v)
        first = (rank * timesteps) // n
        spikes[first:, i] = True
    return spikes.reshape((timesteps, *image.shape))


def _images(rng: np.random.Generator) -> np.ndarray:
    """Batch with continuous values, heavy ties, sparse zeros and an all-zero image."""
    shape = (2, 5, 6)
    continuous = rng.random(shape) * (rng.random(shape) > 0.3)
    ties = rng.integers(0, 4, size=shape).astype(np.float64)  # many equal values and zeros
    sparse = np.zeros(shape)
    sparse[0, 1, 2], sparse[1, 3, 3], sparse[0, 0, 0] = 0.5, 0.9, 0.5  # n = 3 < T
    return np.stack([continuous, ties, sparse, np.zeros(shape)])


@pytest.mark.parametrize("timesteps", [1, 2, 4, 7, 15, 40])
def test_batched_equals_one_image_at_a_time(timesteps):
    rng = np.random.default_rng(0)
    for _ in range(3):
        images = _images(rng)
        got = intensity_to_latency(torch.from_numpy(images), timesteps).numpy()
        assert got.shape == (4, timesteps, 2, 5, 6) and got.dtype == bool
        for b in range(images.shape[0]):
            np.testing.assert_array_equal(got[b], _one_image_reference(images[b], timesteps))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("timesteps", [2, 15])
def test_every_dtype_and_path_gives_the_float64_spikes(dtype, timesteps):
    """float16/32 sort integer keys in NumPy, bfloat16 takes the torch path: all equal the reference."""
    rng = np.random.default_rng(1)
    images = _images(rng)
    exact = torch.from_numpy(images).to(dtype)  # values rounded to the dtype, then compared in float64
    expected = np.stack([_one_image_reference(im, timesteps) for im in exact.double().numpy()])
    np.testing.assert_array_equal(intensity_to_latency(exact, timesteps).numpy(), expected)
    np.testing.assert_array_equal(spike_latency(exact, timesteps).numpy(),
                                  first_spike_latency(torch.from_numpy(expected)).numpy())


def test_negative_zero_never_fires():
    """-0.0 passes the non-negativity check; its bit pattern must not sort as the largest value."""
    x = torch.tensor([[[[0.5, -0.0, 0.2, 0.0]]]], dtype=torch.float32)
    spikes = intensity_to_latency(x, 3)
    assert not spikes[0, :, 0, 0, 1].any() and not spikes[0, :, 0, 0, 3].any()
    assert spikes[0, 0, 0, 0, 0] and spikes[0, -1, 0, 0, 2]
    assert spike_latency(x, 3)[0, 0, 0].tolist() == [0, 3, 1, 3]


def test_cumulative_and_first_spike_consistent():
    """Invariants: spikes are monotone in t; first_spike_latency recovers spike_latency; spikes[t] == latency <= t."""
    x = torch.rand(3, 4, 7, 7) * (torch.rand(3, 4, 7, 7) > 0.2)
    spikes = intensity_to_latency(x, 15)
    assert bool((spikes[:, 1:] >= spikes[:, :-1]).all())
    latency = spike_latency(x, 15)
    torch.testing.assert_close(first_spike_latency(spikes), latency)
    torch.testing.assert_close(first_spike_latency(spikes.float()), latency)
    for t in range(15):
        torch.testing.assert_close(spikes[:, t], latency <= t)


def test_zeros_never_fire_and_every_nonzero_fires():
    """Invariant: latency == T exactly where the intensity is 0; all non-zero values fire by T - 1."""
    x = torch.rand(2, 4, 9, 9) * (torch.rand(2, 4, 9, 9) > 0.5)
    latency = spike_latency(x, 15)
    torch.testing.assert_close(latency == 15, x == 0)
    assert int(latency[x > 0].max()) <= 14


def test_bins_are_equal_within_one_and_earlier_is_stronger():
    """Invariant: with distinct values the T bins differ in size by at most one, and a value never fires
    after a smaller one."""
    x = torch.randperm(4 * 10 * 10).float().add(1).reshape(1, 4, 10, 10)  # 400 distinct non-zero values
    latency = spike_latency(x, 15).reshape(-1)
    sizes = torch.bincount(latency, minlength=15)
    assert int(sizes.sum()) == 400 and int(sizes.max() - sizes.min()) <= 1
    order = torch.argsort(x.reshape(-1), descending=True)
    assert bool((latency[order][1:] >= latency[order][:-1]).all())


def test_matches_spyketorch_chunks_when_divisible_without_ties():
    """With n a multiple of T and distinct values, bin k holds sorted ranks k*n/T .. (k+1)*n/T - 1 (SpykeTorch)."""
    rng = np.random.default_rng(3)
    image = rng.permutation(np.arange(1, 46, dtype=np.float64))  # n = 45 = 3 * 15
    image = np.concatenate([image, np.zeros(3)]).reshape(1, 1, 6, 8)
    latency = spike_latency(torch.from_numpy(image), 15).reshape(-1).numpy()
    order = np.argsort(-image.reshape(-1), kind="stable")
    for position, index in enumerate(order[:45]):
        assert latency[index] == position // 3
    assert (latency[order[45:]] == 15).all()


def test_each_image_is_coded_on_its_own():
    """Invariant: coding a batch equals coding each image alone (no cross-image ranking)."""
    x = torch.rand(3, 2, 5, 5)
    x[1] *= 100.0
    batch = spike_latency(x, 15)
    for b in range(3):
        torch.testing.assert_close(batch[b : b + 1], spike_latency(x[b : b + 1], 15))


def test_latency_to_intensity_values():
    latency = torch.tensor([0, 1, 14, 15])
    torch.testing.assert_close(latency_to_intensity(latency, 15), torch.tensor([1.0, 14 / 15, 1 / 15, 0.0]))


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        spike_latency(-torch.rand(1, 1, 3, 3), 15)
    with pytest.raises(ValueError, match="non-negative"):
        spike_latency(torch.full((1, 1, 2, 2), float("nan")), 15)
    with pytest.raises(ValueError, match="timesteps"):
        intensity_to_latency(torch.rand(1, 1, 3, 3), 0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        spike_latency(torch.rand(3, 3), 15)
    with pytest.raises(ValueError, match="B, T, C, H, W"):
        first_spike_latency(torch.zeros(2, 3, 3, 3, dtype=torch.bool))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_row_blocks_on_several_threads_give_the_same_spikes(threads):
    """Images are coded independently, so splitting the batch into blocks over threads changes nothing
    (19 images: three blocks of up to 8, the last one short)."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy((rng.random((19, 3, 8, 9)) ** 3 * (rng.random((19, 3, 8, 9)) > 0.2)).astype(np.float32))
    x[11] = 0  # an image that never fires, inside the second block
    expected = np.stack([_one_image_reference(im, 6) for im in x.double().numpy()])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        spikes, latency = intensity_to_latency(x, 6), spike_latency(x, 6)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(spikes.numpy(), expected)
    np.testing.assert_array_equal(latency.numpy(), first_spike_latency(torch.from_numpy(expected)).numpy())
