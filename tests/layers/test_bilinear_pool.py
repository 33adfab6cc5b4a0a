"""Tests for blastscope.layers.bilinear_pool (Lin et al. 2015; released SDCT code's variant)."""
import math

import pytest
import torch

from blastscope.layers.bilinear_pool import BilinearPool


def _reference(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Sum of outer products over positions, written as plain loops."""
    b, c, h, w = x.shape
    out = torch.zeros(b, c * c, dtype=x.dtype)
    for n in range(b):
        gram = [[0.0] * c for _ in range(c)]
        for i in range(h):
            for j in range(w):
                v = x[n, :, i, j].tolist()
                for p in range(c):
                    for q in range(c):
                        gram[p][q] += v[p] * v[q]
        flat = [g for row in gram for g in row]
        signed = [math.copysign(math.sqrt(abs(g) + eps), g) if g != 0 else 0.0 for g in flat]
        norm = math.sqrt(sum(s * s for s in signed))
        out[n] = torch.tensor([s / norm for s in signed], dtype=x.dtype)
    return out


def test_matches_loop_reference_with_signed_inputs():
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(BilinearPool()(x), _reference(x), rtol=1e-12, atol=1e-12)


def test_no_division_by_number_of_positions():
    """The Gram matrix is a sum, not a mean: before normalisation, entries scale with H*W."""
    x = torch.ones(1, 2, 10, 10, dtype=torch.float64)
    out = BilinearPool(eps=1e-5)(x)
    # all four Gram entries equal 100; after sqrt and L2 normalisation each is 1/2
    torch.testing.assert_close(out, torch.full((1, 4), 0.5, dtype=torch.float64))
    assert BilinearPool().forward(x).shape == (1, 4)


def test_output_is_unit_norm_and_shape_is_c_squared():
    out = BilinearPool()(torch.rand(3, 64, 10, 10))
    assert out.shape == (3, 4096)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_gradient_finite_at_zero_features():
    """Invariant: the epsilon inside the sqrt keeps gradients finite when features are 0."""
    x = torch.zeros(1, 3, 2, 2, requires_grad=True)
    y = x.clone()
    y.data[0, 0] = 1.0
    BilinearPool()(y).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_rejects_bad_args():
    with pytest.raises(ValueError, match="eps"):
        BilinearPool(eps=0)
    with pytest.raises(ValueError, match="B x C x H x W"):
        BilinearPool()(torch.rand(2, 3, 4))
