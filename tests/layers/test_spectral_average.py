"""Tests for blastscope.layers.spectral_average (Gehlot et al. 2020, section 3.4)."""
import numpy as np
import pytest
import torch

from blastscope.layers.spectral_average import SpectralAverage


def test_matches_explicit_mean_over_feature_maps_per_position():
    x = torch.randn(2, 64, 10, 10, dtype=torch.float64)
    out = SpectralAverage()(x)
    assert out.shape == (2, 100)
    arr = x.numpy()
    for b in range(2):
        for i in range(10):
            for j in range(10):
                expected = sum(arr[b, c, i, j] for c in range(64)) / 64
                assert out[b, i * 10 + j].item() == pytest.approx(expected, abs=1e-12)


def test_differs_from_released_code_reshape():
    """The released (64,10,10)->(100,64) reshape mixes channels; ours must not equal it."""
    x = torch.randn(1, 64, 10, 10, dtype=torch.float64)
    released = x[0].numpy().reshape(100, 64).mean(axis=1)
    assert not np.allclose(SpectralAverage()(x)[0].numpy(), released)


def test_rejects_non_4d_input():
    with pytest.raises(ValueError, match="B x C x H x W"):
        SpectralAverage()(torch.rand(64, 10, 10))
