"""Every speed-up of the performance issue against its reference path, within a stated tolerance.

(Kept together here; each test names the module it covers.)
"""
import copy
import math

import cv2
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from torch import nn

from blastscope.bench.latency import latency_loop
from blastscope.engine.inference import predict_arrays
from blastscope.engine.sampling import AugmentedImages
from blastscope.engine.tensors import denormals_flushed, flush_denormal, to_model_input
from blastscope.layers.dct import DCT2d, EnergyThresholdDCT
from blastscope.layers.stain_deconvolution import StainDeconvolution
from blastscope.models.base_network import BasicNetwork, ConvBNAct
from blastscope.ops.centre import cell_centroid
from blastscope.ops.dct import dct2, dct2_fft, dct_matrix, log_magnitude
from blastscope.ops.geometry import gaussian_blur, gaussian_kernel_size
from blastscope.ops.latency import intensity_to_latency, spike_latency
from blastscope.ops.optical_density import log_intensity, optical_density


# ---------------------------------------------------------------- ops/dct.py: FFT DCT
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 2, 16, 16), (3, 4)])
def test_dct2_fft_equals_matrix_dct_and_scipy_float64(shape):
    """Tolerance 1e-12 in float64: the same orthonormal transform."""
    x = torch.from_numpy(np.random.default_rng(0).normal(size=shape))
    np.testing.assert_allclose(dct2_fft(x).numpy(), dct2(x).numpy(), atol=1e-12)
    np.testing.assert_allclose(dct2_fft(x).numpy(), scipy.fft.dctn(x.numpy(), norm="ortho", axes=(-2, -1)), atol=1e-12)


def test_dct2_fft_float32_at_350_within_rounding_and_keeps_channels_last():
    """Tolerance: 1e-5 of the largest coefficient (float32, different summation order)."""
    x = torch.rand(2, 3, 350, 350).contiguous(memory_format=torch.channels_last)
    fast, ref = dct2_fft(x), dct2(x.contiguous(), dct_matrix(350), dct_matrix(350))
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert float((fast - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


def test_dct2_fft_gradient_is_the_inverse_transform():
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2_fft, (x,))
    g = torch.randn(2, 2, 6, 5, dtype=torch.float64)
    (gx,) = torch.autograd.grad(dct2_fft(x), x, g)
    (gm,) = torch.autograd.grad(dct2(x), x, g)
    torch.testing.assert_close(gx, gm, atol=1e-12, rtol=0)


def test_dct2_fft_rejects_non_cpu_float():
    with pytest.raises(ValueError, match="float32/float64"):
        dct2_fft(torch.zeros(2, 2, dtype=torch.int64))


@pytest.mark.parametrize("signed", [True, False])
def test_fused_log_magnitude_matches_composed_expression_and_its_gradient(signed):
    """Forward within 1 ulp-level (1e-6 relative in float32); gradient as autograd of the composed
    expression away from 0. At d == 0 the unsigned form's gradient is 0 (autograd's for abs) and
    the signed form's is its true slope log10(e) (autograd gives 0 there: sign'(0) = 0)."""
    d = torch.tensor([-50.0, -1e-3, 0.0, 2e-7, 0.5, 9.0, 0.0], requires_grad=True)
    d2 = d.detach().clone().requires_grad_()
    mag = torch.log1p(d2.abs()) / math.log(10.0)
    ref = torch.sign(d2) * mag if signed else mag
    out = log_magnitude(d, signed)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-9)
    g = torch.linspace(-1, 1, 7)
    out.backward(g)
    ref.backward(g)
    away = d.detach() != 0
    torch.testing.assert_close(d.grad[away], d2.grad[away], rtol=1e-6, atol=1e-9)
    at_zero = g[~away] / math.log(10.0) if signed else torch.zeros(2)
    torch.testing.assert_close(d.grad[~away], at_zero, rtol=1e-6, atol=0.0)
    if signed:  # the true derivative: a central difference in float64 at 0
        h = 1e-6
        slope = (math.copysign(math.log10(1 + h), h) - math.copysign(math.log10(1 + h), -h)) / (2 * h)
        assert slope == pytest.approx(1 / math.log(10.0), rel=1e-5)


# ---------------------------------------------------------------- layers/dct.py: backends
@pytest.mark.parametrize("output", ["signed_log", "log_abs", "none"])
def test_dct2d_fft_backend_matches_matrix_backend_forward_and_backward(output):
    """Tolerance: 1e-4 absolute on outputs in [-5, 5] and on input gradients (float32)."""
    x = torch.rand(2, 3, 40, 40).contiguous(memory_format=torch.channels_last)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast, slow = DCT2d(output=output, backend="fft")(a), DCT2d(output=output, backend="matrix")(b)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
    g = torch.randn_like(slow)
    fast.backward(g)
    slow.backward(g)
    torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_dct_layers_trace_with_the_matrix_form_for_export():
    """Invariant: under tracing the exportable matrix DCT is used, and it computes the same values."""
    layer = DCT2d(output="signed_log")
    x = torch.rand(1, 3, 12, 12)
    traced = torch.jit.trace(layer, (x,), check_trace=False)
    assert "matmul" in str(traced.graph)
    torch.testing.assert_close(traced(x), layer(x), atol=1e-5, rtol=1e-5)
    e = EnergyThresholdDCT(energy=0.9)
    torch.testing.assert_close(EnergyThresholdDCT(energy=0.9, backend="matrix")(x), e(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="backend"):
        DCT2d(backend="fast")


# ---------------------------------------------------------------- SD layer: fused, channels-last
def test_log_intensity_is_minus_ln10_times_optical_density():
    rgb = torch.tensor([0.0, 1e-9, 1e-6, 0.3, 1.0, 0.0]).reshape(1, 6, 1, 1)
    torch.testing.assert_close(log_intensity(rgb), -math.log(10.0) * optical_density(rgb), rtol=1e-6, atol=1e-7)
    leaf = torch.rand(4, requires_grad=True)
    log_intensity(leaf).sum().backward()  # the out-of-place branch keeps autograd working
    torch.testing.assert_close(leaf.grad, 1 / leaf.detach())


@pytest.mark.parametrize("channels_last", [False, True])
def test_stain_layer_fast_path_matches_plain_conv_of_optical_density(channels_last):
    """Tolerance 1e-5 (float32) on outputs in (-1, 1); the weight gradient, a float32 sum over 1,800
    pixels in two summation orders, within 1e-4 relative to its largest entry."""
    layer = StainDeconvolution()
    x = torch.rand(2, 3, 30, 30, generator=torch.Generator().manual_seed(0))
    x[:, :, :5] = 0
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref_layer = copy.deepcopy(layer)
    out = layer(x)
    ref = torch.tanh(ref_layer.conv(optical_density(x)))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    ref.backward(g)
    scale = float(ref_layer.conv.weight.grad.abs().max())
    torch.testing.assert_close(layer.conv.weight.grad, ref_layer.conv.weight.grad, atol=1e-4 * scale, rtol=0.0)


# ---------------------------------------------------------------- models: in-place ReLU, folded BN
def _plain(model: nn.Module) -> nn.Module:
    """A copy whose blocks run conv, BN and a non-in-place ReLU as separate modules."""
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, ConvBNAct):
            m.__class__ = nn.Sequential
            m[2] = nn.ReLU()
    return plain


def test_basic_network_matches_plain_blocks_in_training_and_eval():
    """Training (in-place ReLU): identical to 1e-6. Eval (BN folded into the conv): 1e-5."""
    torch.manual_seed(0)
    model = BasicNetwork(3, 2, widths=(4, 6, 8, 8, 8, 8))
    plain = _plain(model)
    x = torch.rand(3, 3, 40, 40)
    torch.testing.assert_close(model(x), plain(x), atol=1e-6, rtol=1e-6)
    model(x).sum().backward()
    plain(x).sum().backward()
    for (n, p), (_, q) in zip(model.named_parameters(), plain.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=n)
    for _ in range(3):  # non-trivial running statistics
        model(torch.rand(3, 3, 40, 40) * 2)
    plain.load_state_dict(model.state_dict())
    model.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), plain.forward_features(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- engine: FTZ, inference, sampling
def test_flush_denormal_flushes_inside_and_restores_after():
    assert not denormals_flushed()
    with flush_denormal() as supported:
        if supported:
            assert denormals_flushed()
            assert float(torch.tensor([1e-39]) * 1.0) == 0.0
    assert not denormals_flushed()


def test_flush_denormal_does_not_change_a_training_step_beyond_rounding():
    """Tolerance 1e-6: flushing |x| < 1.2e-38 to zero is invisible at float32 resolution of O(1) values."""
    torch.manual_seed(0)
    model = BasicNetwork(3, 2, widths=(4, 4, 8, 8, 8, 8))
    other = copy.deepcopy(model)
    x = torch.rand(4, 3, 40, 40) * 1e-30  # small inputs: the first activations fall near the denormal range
    y = torch.tensor([0, 1, 0, 1])
    F.cross_entropy(model(x), y).backward()
    with flush_denormal():
        F.cross_entropy(other(x), y).backward()
    for (n, p), (_, q) in zip(model.named_parameters(), other.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5, msg=n)


def test_predict_arrays_leaves_a_trainable_model():
    """Regression: moving weights to channels-last happens outside inference mode, so the model
    still trains afterwards (inference tensors cannot be saved for backward)."""
    model = BasicNetwork(3, 2, widths=(4, 4, 4, 4, 4, 4))
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    logp, _ = predict_arrays(model, images, batch_size=2)
    assert logp.shape == (3, 2)
    model.train()
    model(to_model_input(torch.from_numpy(images))).sum().backward()
    assert model.fc.weight.grad is not None


def test_augmented_images_positions_give_the_same_items_as_the_full_epoch():
    from blastscope.transforms.sdct_augment import sdct_train_transform

    images = np.random.default_rng(1).integers(0, 256, (7, 20, 20, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 1, 0, 1, 1])
    full = AugmentedImages(images, labels, sdct_train_transform(), seed=5)
    part = AugmentedImages(images, labels, sdct_train_transform(), seed=5)
    full.set_epoch(2)
    part.set_epoch(2)
    part.positions = np.array([1, 4, 6])
    assert len(part) == 3
    for i, j in enumerate(part.positions):
        a, b = part[i], full[int(j)]
        assert torch.equal(a[0], b[0]) and a[1] == b[1]


# ---------------------------------------------------------------- ops/latency.py: NumPy path
def test_batched_latency_equals_the_per_image_loop_with_ties_and_zeros():
    """Exact: the same spikes, including tied values (one latency) and zeros (never fire)."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 6, (3, 2, 9, 7)).astype(np.float32))  # many ties and zeros
    x[2] = 0  # an image that never fires
    for t in (1, 4, 15):
        assert torch.equal(intensity_to_latency(x, t), latency_loop(x, t))


def test_numpy_latency_path_equals_the_torch_sort_path():
    """bfloat16 input takes the torch sort/searchsorted path; on bf16-exact values both agree exactly."""
    x = (torch.rand(2, 4, 10, 10) ** 2).to(torch.bfloat16)
    x[x < 0.1] = 0
    assert torch.equal(spike_latency(x.float(), 15), spike_latency(x, 15))


# ---------------------------------------------------------------- ops/geometry.py, ops/centre.py
def test_gaussian_blur_equals_the_float32_blur_rounded_once():
    """Exact on most pixels, never more than one grey level (float32 rounding at .5)."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    for sigma in (0.3, 0.75, 2.0):
        k = gaussian_kernel_size(sigma)
        ref = cv2.GaussianBlur(image.astype(np.float32), (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        ref = np.clip(np.rint(ref), 0, 255).astype(np.uint8)
        diff = np.abs(gaussian_blur(image, sigma).astype(int) - ref)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_cell_centroid_equals_the_weighted_average_of_foreground_pixels():
    rng = np.random.default_rng(3)
    image = np.zeros((50, 60, 3), np.uint8)
    image[10:30, 20:55] = rng.integers(0, 3, (20, 35, 3))
    for threshold in (0, 1):
        mask = image.max(axis=2) > threshold
        rows, cols = np.nonzero(mask)
        assert cell_centroid(image, threshold) == (float(np.mean(rows)), float(np.mean(cols)))
    assert cell_centroid(np.zeros((5, 7, 3), np.uint8)) == (2.0, 3.0)
