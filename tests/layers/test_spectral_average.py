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


def test_released_mode_is_the_released_reshape_even_in_channels_last_memory():
    """Reference: NumPy's reshape of each (64,10,10) buffer to (100,64), mean over the last axis."""
    x = torch.randn(3, 64, 10, 10, dtype=torch.float64)
    expected = x.numpy().reshape(3, 100, 64).mean(axis=2)
    np.testing.assert_allclose(SpectralAverage("released")(x).numpy(), expected, atol=1e-12)
    cl = x.contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(SpectralAverage("released")(cl).numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError, match="mode must be"):
        SpectralAverage("pixels")


def test_the_svm_features_follow_the_model_s_spectral_mode():
    """predict_arrays and the ONNX graph read the features the model's ``spectral_mode`` names."""
    from blastscope.engine.inference import predict_arrays
    from blastscope.models import create_model

    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 255, (2, 160, 160, 3), dtype=np.uint8)  # 4 x 4 maps
    model = create_model("sdct_net", spectral="released").eval()
    assert model.spectral_mode == "released" and create_model("sdct_net").spectral_mode == "paper"
    _, feats = predict_arrays(model, images, spectral=True)
    with torch.no_grad():
        maps = model.forward_features(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    np.testing.assert_allclose(feats, SpectralAverage("released")(maps).numpy(), atol=1e-4)
    assert not np.allclose(feats, SpectralAverage()(maps).numpy(), atol=1e-4)
