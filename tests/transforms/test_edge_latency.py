"""Tests for blastscope.transforms.edge_latency (Noshad & Fallahi 2021, Algorithm 1)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch

from blastscope.ops.latency import latency_to_intensity, spike_latency
from blastscope.transforms.edge_latency import EdgeLatencyEncoder, gaussian_blur_batch

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled"


def _batch(seed: int = 0, shape=(3, 3, 20, 24)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("window", [4, 5])
def test_gabor_response_matches_scipy(window):
    """|I (*) G| with "same" zero padding equals scipy's correlate2d and, the kernel being
    point-symmetric, convolve2d."""
    encoder = EdgeLatencyEncoder(window=window)
    gray = _batch(1, (2, 1, 13, 17)).double()
    got = encoder.edge_response(gray).numpy()
    assert got.shape == (2, 4, 13, 17)
    kernels = encoder.kernels.double().numpy()
    for b in range(2):
        for l in range(4):
            k = kernels[l, 0]
            expected = np.abs(scipy.signal.correlate2d(gray[b, 0].numpy(), k, mode="same"))
            np.testing.assert_allclose(got[b, l], expected, atol=1e-10)
            convolved = np.abs(scipy.signal.convolve2d(gray[b, 0].numpy(), k, mode="same"))
            if window % 2:  # even kernels shift by one pixel between the two "same" conventions
                np.testing.assert_allclose(got[b, l], convolved, atol=1e-10)


def test_gaussian_blur_matches_scipy():
    x = _batch(2, (2, 3, 15, 18)).double()
    for sigma in (0.7, 1.0, 2.0):
        got = gaussian_blur_batch(x, sigma).numpy()
        for b in range(2):
            for c in range(3):
                expected = scipy.ndimage.gaussian_filter(x[b, c].numpy(), sigma, mode="mirror", truncate=4.0)
                np.testing.assert_allclose(got[b, c], expected, atol=1e-12)
    assert gaussian_blur_batch(x, 0.0) is x


def test_encode_shapes_and_range():
    x = _batch()
    out = EdgeLatencyEncoder().encode(x)
    assert out.shape == (3, 1, 20, 24) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    separate = EdgeLatencyEncoder(combine="none").encode(x)
    assert separate.shape == (3, 4, 20, 24)
    assert EdgeLatencyEncoder(combine="none").out_channels == 4


def test_pipeline_composition_without_blur():
    """Without blur, the output is (T - latency) / T of the jointly ranked Gabor responses, max over orientations."""
    x = _batch(4)
    encoder = EdgeLatencyEncoder(blur_sigma=0.0, combine="none", timesteps=15)
    gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    expected = latency_to_intensity(spike_latency(encoder.edge_response(gray), 15), 15)
    torch.testing.assert_close(encoder.encode(x), expected)
    merged = EdgeLatencyEncoder(blur_sigma=0.0, combine="max").encode(x)
    torch.testing.assert_close(merged, expected.amax(dim=1, keepdim=True))
    steps = expected * 15  # only the 16 levels (15 - t) / 15 occur
    torch.testing.assert_close(steps, steps.round(), atol=1e-5, rtol=0)


def test_deterministic_batch_independent_and_scale_invariant():
    """Invariants: same input -> same output; a batch equals its images coded alone; latency coding is
    rank-based, so scaling the input by a positive factor changes nothing."""
    x = _batch(5)
    encoder = EdgeLatencyEncoder()
    first = encoder.encode(x)
    torch.testing.assert_close(encoder.encode(x), first, rtol=0, atol=0)
    for b in range(x.shape[0]):
        torch.testing.assert_close(encoder.encode(x[b : b + 1]), first[b : b + 1])
    torch.testing.assert_close(encoder.encode(x * 0.5), first)


def test_black_image_gives_zero():
    out = EdgeLatencyEncoder().encode(torch.zeros(1, 3, 12, 12))
    assert float(out.abs().max()) == 0.0


def test_call_on_uint8_image_matches_encode():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    encoder = EdgeLatencyEncoder()
    out = encoder(image, rng)
    assert out.shape == (16, 20, 1) and out.dtype == np.float32
    batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    np.testing.assert_allclose(out[..., 0], encoder.encode(batch)[0, 0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        encoder(image.astype(np.float32), rng)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(timesteps=0), "timesteps"),
        (dict(blur_sigma=-1.0), "blur_sigma"),
        (dict(combine="sum"), "combine"),
        (dict(window=1), "window"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EdgeLatencyEncoder(**kwargs)


def test_real_cnmc_cell():
    """On a real C-NMC cell (black background) the edges of the cell fire and the background stays dark."""
    paths = sorted(DATA.glob("*.bmp")) if DATA.is_dir() else []
    if not paths:
        pytest.skip(f"C-NMC sample images not found at {DATA}")
    bgr = cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (100, 100), interpolation=cv2.INTER_AREA)
    out = EdgeLatencyEncoder()(rgb, np.random.default_rng(0))[..., 0]
    assert out.shape == (100, 100)
    background = rgb.max(axis=2) == 0
    background = scipy.ndimage.binary_erosion(background, iterations=8)
    if background.sum() < 50:
        pytest.skip("sample image has too little black background for this check")
    assert out[background].mean() < 0.05 < out[~background].mean()
