"""Tests for blastscope.ops.optical_density (released SDCT-AuxNet-theta OD convention)."""
import math

import numpy as np
import pytest
import torch

from blastscope.ops.optical_density import optical_density


def test_matches_beer_lambert_elementwise():
    """OD = -log10(I) for positive intensities, computed independently with numpy."""
    rng = np.random.default_rng(0)
    rgb = rng.uniform(1e-3, 1.0, size=(2, 3, 5, 4))
    expected = -np.log10(rgb)
    np.testing.assert_allclose(optical_density(torch.from_numpy(rgb)).numpy(), expected, rtol=1e-12)


def test_exact_zeros_are_background_with_zero_od():
    """Invariant: exact zeros (black background) map to OD 0, not inf, element-wise."""
    rgb = torch.tensor([[[[0.0, 0.5]], [[0.0, 0.0]], [[1.0, 0.1]]]])  # 1 x 3 x 1 x 2
    od = optical_density(rgb)
    assert od[0, 0, 0, 0] == 0 and od[0, 1, 0, 0] == 0 and od[0, 1, 0, 1] == 0
    assert od[0, 2, 0, 0] == 0  # I = 1 -> OD 0 as well
    assert math.isclose(od[0, 0, 0, 1].item(), math.log10(2), rel_tol=1e-6)


def test_tiny_positive_values_are_floored_not_infinite():
    """Invariant: no inf/nan for any value in [0, 1], and the floor is -log10(eps)."""
    rgb = torch.tensor([0.0, 1e-45, 1e-30, 1e-7, 1e-6, 1.0], dtype=torch.float32)
    od = optical_density(rgb, eps=1e-6)
    assert torch.isfinite(od).all()
    assert od.max().item() == pytest.approx(6.0, rel=1e-6)
    assert od[1].item() == pytest.approx(6.0, rel=1e-6) and od[0].item() == 0


def test_shape_dtype_and_gradient_are_preserved():
    rgb = torch.rand(2, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    od = optical_density(rgb)
    assert od.shape == rgb.shape and od.dtype == torch.float64
    od.sum().backward()
    expected = -1.0 / (rgb.detach() * math.log(10))
    torch.testing.assert_close(rgb.grad, expected)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eps"):
        optical_density(torch.rand(3), eps=0.0)
    with pytest.raises(TypeError, match="dtype"):
        optical_density(torch.zeros(3, dtype=torch.uint8))
