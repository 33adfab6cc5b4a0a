"""Tests for blastscope.layers.stain_deconvolution (SD layer of SD-Net / SDCT-Net / LeukoNet)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from blastscope.layers.stain_deconvolution import OpticalDensity, StainDeconvolution
from blastscope.ops.stain import default_stain_matrix, inverse_stain_matrix, macenko_stain_matrix

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CNMC = DATA / "cnmc-samples" / "labeled"

# scikit-image's separate_stains computes  max(ln(max(I, 1e-6)) / ln(1e-6) @ M, 0).
# ln(I) / ln(1e-6) = log10(I) / log10(1e-6) = -log10(I) / 6 = OD / 6, so
# 6 * separate_stains(I, M) = max(OD @ M, 0) wherever I >= 1e-6 (every non-zero 8-bit value).
SKIMAGE_FACTOR = -np.log10(1e-6)


def _cnmc_cells(n: int = 3) -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    paths = sorted(CNMC.glob("*.bmp"))
    if not paths:
        pytest.skip(f"C-NMC sample cells not found under {CNMC}")
    return [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths[:n]]


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float64) / 255.0).permute(2, 0, 1).unsqueeze(0)


@pytest.mark.parametrize("use_macenko", [False, True])
def test_matches_skimage_separate_stains_on_real_cells(use_macenko):
    skimage_color = pytest.importorskip("skimage.color")
    cells = _cnmc_cells()
    matrix = macenko_stain_matrix(cells[0]) if use_macenko else default_stain_matrix()
    layer = StainDeconvolution(stain_matrix=matrix, trainable=False, tanh=False, dtype=torch.float64)
    for rgb in cells:
        ours = layer(_to_tensor(rgb))[0].permute(1, 2, 0).numpy()
        unit = rgb.astype(np.float64) / 255.0
        # our convention: exact zeros are background with OD 0; give skimage the same input (I = 1)
        unit_no_zeros = np.where(unit == 0, 1.0, unit)
        reference = SKIMAGE_FACTOR * skimage_color.separate_stains(unit_no_zeros, inverse_stain_matrix(matrix))
        np.testing.assert_allclose(np.maximum(ours, 0.0), reference, atol=1e-10, rtol=1e-10)
        assert (ours < 0).any(), "the comparison should exercise skimage's clipping at zero"
        background = (rgb == 0).all(axis=-1)
        assert background.any() and np.all(ours[background] == 0.0)


def test_zero_handling_differs_from_skimage_as_documented():
    """skimage floors zeros at 1e-6 (OD 6); we treat them as background (OD 0)."""
    skimage_color = pytest.importorskip("skimage.color")
    rgb = np.zeros((1, 1, 3))
    layer = StainDeconvolution(trainable=False, tanh=False, dtype=torch.float64)
    ours = layer(torch.zeros(1, 3, 1, 1, dtype=torch.float64))
    theirs = SKIMAGE_FACTOR * skimage_color.separate_stains(rgb, inverse_stain_matrix(default_stain_matrix()))
    assert torch.all(ours == 0)
    expected_theirs = np.maximum(np.full(3, 6.0) @ inverse_stain_matrix(default_stain_matrix()), 0)
    np.testing.assert_allclose(theirs.ravel(), expected_theirs, atol=1e-9)


def test_weight_is_transposed_inverse_and_tanh_applies():
    matrix = default_stain_matrix()
    layer = StainDeconvolution(stain_matrix=matrix)
    np.testing.assert_allclose(layer.conv.weight[:, :, 0, 0].detach().numpy(), np.linalg.inv(matrix).T, rtol=1e-6)
    np.testing.assert_allclose(layer.inverse_matrix.numpy(), np.linalg.inv(matrix), rtol=1e-6)
    x = torch.rand(2, 3, 4, 4)
    no_tanh = StainDeconvolution(stain_matrix=matrix, tanh=False)
    torch.testing.assert_close(layer(x), torch.tanh(no_tanh(x)))
    assert layer(x).abs().max() < 1


def test_trainable_flag_and_bias():
    assert all(p.requires_grad for p in StainDeconvolution().parameters())
    frozen = StainDeconvolution(trainable=False, bias=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert frozen.conv.bias is not None and torch.all(frozen.conv.bias == 0)
    assert StainDeconvolution().conv.bias is None


def test_gradient_reaches_weight():
    layer = StainDeconvolution()
    layer(torch.rand(2, 3, 5, 5)).sum().backward()
    assert layer.conv.weight.grad is not None and torch.isfinite(layer.conv.weight.grad).all()


def test_from_reference_images_uses_macenko():
    cells = _cnmc_cells(1)
    layer = StainDeconvolution.from_reference_images(cells[0], tanh=False)
    np.testing.assert_allclose(
        layer.inverse_matrix.numpy(), np.linalg.inv(macenko_stain_matrix(cells[0])), rtol=1e-5, atol=1e-6
    )
    assert layer.apply_tanh is False


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="3 x 3"):
        StainDeconvolution(stain_matrix=np.eye(2))
    with pytest.raises(ValueError, match="singular"):
        StainDeconvolution(stain_matrix=np.ones((3, 3)))
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        StainDeconvolution()(torch.rand(1, 4, 2, 2))
    with pytest.raises(ValueError, match="eps"):
        OpticalDensity(eps=2.0)


@pytest.mark.parametrize("bias", [False, True])
def test_forward_od_equals_forward_on_the_optical_densities(bias):
    """The ONNX graph's form of the layer (mixing as a product, from OD) equals the layer on RGB."""
    torch.manual_seed(0)
    layer = StainDeconvolution(bias=bias)
    if bias:
        with torch.no_grad():
            layer.conv.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    rgb = torch.randint(0, 256, (2, 3, 9, 7)).float() / 255.0
    rgb[:, :, :2] = 0
    with torch.no_grad():
        torch.testing.assert_close(layer.forward_od(layer.od(rgb)), layer(rgb), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="B x 3 x H x W optical densities"):
        layer.forward_od(torch.zeros(2, 4, 5, 5))
