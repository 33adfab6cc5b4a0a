"""Tests for blastscope.layers.activations (ReLU / PReLU / P-TELU of LeukoNet Table 1)."""
import math

import pytest
import torch
from torch import nn

from blastscope.layers.activations import PTELU, make_activation


def test_ptelu_matches_formula_per_channel():
    act = PTELU(num_parameters=3).double()
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.5, 2.0, 1.0]))
        act.beta.copy_(torch.tensor([3.0, 0.25, 0.0]))
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    out = act(x)
    for b, c, i, j in [(b, c, i, j) for b in range(2) for c in range(3) for i in range(4) for j in range(5)]:
        v = x[b, c, i, j].item()
        a, be = act.alpha[c].item(), act.beta[c].item()
        expected = v if v >= 0 else a * math.tanh(be * v)
        assert out[b, c, i, j].item() == pytest.approx(expected, abs=1e-14)


def test_ptelu_parameters_are_constrained_non_negative():
    """Invariant: negative stored parameters act as their absolute value (alpha, beta >= 0)."""
    act = PTELU(2)
    x = torch.randn(4, 2, 3)
    ref = act(x)
    with torch.no_grad():
        act.alpha.neg_()
        act.beta.neg_()
    torch.testing.assert_close(act(x), ref)
    assert (act(-torch.rand(1, 2, 50) * 100) >= -1.0 - 1e-6).all()  # bounded below by -alpha


def test_ptelu_backward_finite_and_reaches_parameters():
    act = PTELU(3)
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    act(x).square().sum().backward()
    for g in (x.grad, act.alpha.grad, act.beta.grad):
        assert g is not None and torch.isfinite(g).all()
    assert act.alpha.grad.abs().sum() > 0 and act.beta.grad.abs().sum() > 0


def test_ptelu_gradcheck():
    act = PTELU(2).double()
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    x.data[x.data.abs() < 1e-3] = 0.5  # keep away from the kink at 0
    assert torch.autograd.gradcheck(act, (x,))


def test_prelu_from_factory_matches_formula_and_backward():
    act = make_activation("prelu", 4)
    assert isinstance(act, nn.PReLU) and act.weight.shape == (4,)
    with torch.no_grad():
        act.weight.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = act(x)
    slope = act.weight.view(1, 4, 1, 1)
    torch.testing.assert_close(out, torch.where(x >= 0, x, slope * x))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(act.weight.grad).all()


def test_factory_builds_each_name_and_rejects_others():
    assert isinstance(make_activation("relu", 8), nn.ReLU)
    assert isinstance(make_activation("ptelu", 8), PTELU) and make_activation("ptelu", 8).alpha.shape == (8,)
    with pytest.raises(ValueError, match="activation"):
        make_activation("gelu", 8)
    with pytest.raises(ValueError, match="num_parameters"):
        PTELU(0)
    with pytest.raises(ValueError, match="init_alpha"):
        PTELU(1, init_alpha=-1)
    with pytest.raises(ValueError, match="B x 3"):
        PTELU(3)(torch.rand(2, 4, 5))
