"""SpikeInput: the Spike-PCA-ResNet model input (edge latency -> PCA reconstruction -> train z-score)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from sklearn.decomposition import PCA

from blastscope.engine.inputs import build_input
from blastscope.transforms.edge_latency import EdgeLatencyEncoder
from blastscope.transforms.spike_input import SpikeInput


def _noise_images(n: int, side: int, seed: int) -> np.ndarray:
    """Textured images: edges everywhere."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


def _disc_images(n: int, side: int, seed: int) -> np.ndarray:
    """A flat disc on a black background: edges only on the rim (a different distribution)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.zeros((n, side, side, 3), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.35, 0.65, size=2) * side
        r = rng.uniform(0.15, 0.3) * side
        out[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(80, 255, size=3)
    return out


def test_output_shape_dtype_and_resize() -> None:
    """Any uint8 B x H x W x 3 batch becomes float32 B x 1 x size x size; the default size is 100."""
    train = _noise_images(12, 64, seed=0)
    spike = SpikeInput(n_components=5).fit(train)
    out = spike(torch.from_numpy(_noise_images(3, 80, seed=1)))
    assert out.shape == (3, 1, 100, 100) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    small = SpikeInput(size=24, n_components=4).fit(_noise_images(10, 24, seed=2))
    assert small(torch.from_numpy(_noise_images(2, 24, seed=3))).shape == (2, 1, 24, 24)


def test_matches_sklearn_pca_and_train_only_zscore() -> None:
    """Reference: sklearn PCA fitted on the encoded TRAINING maps, reconstruction z-scored with the
    training reconstructions' scalar mean/std, equals SpikeInput on a held-out batch."""
    size = 32
    train, test = _noise_images(30, size, seed=4), _disc_images(6, size, seed=5)
    spike = SpikeInput(size=size, n_components=7, svd_solver="full").fit(train)
    encoder = EdgeLatencyEncoder()  # paper defaults, as SpikeInput's

    def encode(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        return encoder.encode(x).reshape(len(images), -1).double().numpy()

    pca = PCA(n_components=7, svd_solver="full").fit(encode(train))
    train_recon = pca.inverse_transform(pca.transform(encode(train)))
    mean, std = train_recon.mean(), train_recon.std()
    expected = (pca.inverse_transform(pca.transform(encode(test))) - mean) / std
    got = spike(torch.from_numpy(test)).reshape(len(test), -1).double().numpy()
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_zscore_statistics_come_from_training_images() -> None:
    """Invariant: training images map to mean 0 / std 1 overall, while a batch from another
    distribution keeps its offset (it is NOT re-centred with its own statistics)."""
    size = 32
    train = _disc_images(40, size, seed=6)
    spike = SpikeInput(size=size, n_components=10).fit(train)
    on_train = spike(torch.from_numpy(train))
    assert abs(float(on_train.mean())) < 1e-3 and abs(float(on_train.std()) - 1.0) < 1e-2
    shifted = spike(torch.from_numpy(_noise_images(8, size, seed=7)))  # edges everywhere: brighter maps
    assert float(shifted.mean()) > 0.5
    # and transforming the other batch leaves the fitted state untouched
    np.testing.assert_array_equal(spike(torch.from_numpy(train[:4])).numpy(), on_train[:4].numpy())


def test_round_trip_through_safetensors_is_identical(tmp_path) -> None:
    """to_arrays -> safetensors file -> load_arrays on a fresh instance gives bit-identical outputs."""
    size = 32
    spike = SpikeInput(size=size, n_components=6).fit(_noise_images(20, size, seed=8))
    path = tmp_path / "input.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in spike.to_arrays().items()}, str(path))
    loaded = SpikeInput(size=size, n_components=6).load_arrays(load_file(str(path)))
    batch = torch.from_numpy(_disc_images(5, size, seed=9))
    assert torch.equal(spike(batch), loaded(batch))
    assert loaded.n_components_ == spike.n_components_ == 6
    assert loaded.summary() == spike.summary()


def test_variance_fraction_keeps_at_least_that_variance() -> None:
    """A float n_components keeps the fewest components whose explained variance reaches it."""
    spike = SpikeInput(size=24, n_components=0.9).fit(_noise_images(25, 24, seed=10))
    assert spike.explained_variance_ratio_ >= 0.9
    ratios = spike.pca_.pca_.explained_variance_ratio_
    assert ratios[:-1].sum() < 0.9 <= ratios.sum() + 1e-9


def test_registry_builds_spike_input() -> None:
    assert isinstance(build_input("spike", size=24, n_components=3), SpikeInput)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"size": 4}, "size"), ({"n_components": 0}, "n_components"), ({"chunk_size": 0}, "chunk_size"),
     ({"timesteps": 0}, "timesteps"), ({"n_components": 1.5}, "n_components")],
)
def test_constructor_rejects_bad_values(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SpikeInput(**kwargs)


def test_errors_before_fit_and_on_bad_input() -> None:
    spike = SpikeInput(size=24, n_components=3)
    with pytest.raises(RuntimeError, match="not fitted"):
        spike(torch.zeros(1, 24, 24, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        spike.fit(np.zeros((4, 24, 24, 3), dtype=np.float32))
    spike.fit(_noise_images(6, 24, seed=11))
    with pytest.raises(ValueError, match="uint8"):
        spike(torch.zeros(1, 24, 24, 3))
    with pytest.raises(ValueError, match="size"):
        SpikeInput(size=32, n_components=3).load_arrays(spike.to_arrays())
