"""Tests for blastscope.layers.dct (SDCT-Net eq. 1 layer, LeukoNet energy-thresholded DCT)."""
import numpy as np
import pytest
import scipy.fft
import torch

from blastscope.layers.dct import DCT2d, EnergyThresholdDCT
from blastscope.ops.dct import energy_threshold_mask


def _scipy_dct(x: torch.Tensor) -> np.ndarray:
    return scipy.fft.dctn(x.detach().numpy(), type=2, norm="ortho", axes=(-2, -1))


@pytest.mark.parametrize("size", [None, (6, 5)])
def test_dct2d_outputs_match_scipy_formulas(size):
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    d = _scipy_dct(x)
    for output, expected in [
        ("none", d),
        ("log_abs", np.log10(1 + np.abs(d))),
        ("signed_log", np.sign(d) * np.log10(1 + np.abs(d))),
    ]:
        layer = DCT2d(size=size, output=output).double()
        np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-12)


def test_dct2d_lazy_size_handles_350_and_rebuilds_for_new_sizes():
    layer = DCT2d(output="none")
    x = torch.rand(1, 3, 350, 350)
    np.testing.assert_allclose(layer(x).numpy(), _scipy_dct(x), atol=2e-3, rtol=1e-4)
    assert layer.t_h.shape == (350, 350)
    y = torch.rand(1, 1, 8, 12, dtype=torch.float64)
    np.testing.assert_allclose(layer(y).numpy(), _scipy_dct(y), atol=1e-12)
    assert layer.t_h.dtype == torch.float64 and layer.t_w.shape == (12, 12)


def test_dct2d_matrices_are_not_saved_in_checkpoints():
    assert DCT2d(size=8).state_dict() == {}


def test_dct2d_fixed_size_rejects_other_sizes_and_bad_args():
    with pytest.raises(ValueError, match="size=\\(8, 8\\)"):
        DCT2d(size=8)(torch.rand(1, 3, 9, 9))
    with pytest.raises(ValueError, match="output"):
        DCT2d(output="log")
    with pytest.raises(ValueError, match="size"):
        DCT2d(size=0)


def test_dct2d_backward_is_finite():
    x = torch.rand(2, 3, 7, 7, requires_grad=True)
    DCT2d(output="signed_log")(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_energy_threshold_dct_matches_paper_formula():
    """Dropped coefficients become 1 (log10 -> 0); kept ones give sign(d) * log10(|d|)."""
    x = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    d = _scipy_dct(x)
    keep = energy_threshold_mask(torch.from_numpy(d), 0.95).numpy()
    replaced = np.where(keep, d, 1.0)
    expected = np.sign(replaced) * np.log10(np.abs(replaced))
    out = EnergyThresholdDCT(energy=0.95).double()(x).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert np.all(out[~keep] == 0) and np.all(out[keep] != 0)


def test_energy_threshold_dct_monotone_log_keeps_the_sign_and_the_order():
    """Reference (scipy DCT): ``log="monotone"`` gives sign(d) log10(1 + |d|) on kept coefficients, 0 on
    dropped ones, so no kept coefficient changes sign; the literal log flips those with |d| < 1."""
    x = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    d = _scipy_dct(x)
    keep = energy_threshold_mask(torch.from_numpy(d), 0.95).numpy()
    out = EnergyThresholdDCT(energy=0.95, log="monotone").double()(x).numpy()
    np.testing.assert_allclose(out, np.where(keep, np.sign(d) * np.log10(1 + np.abs(d)), 0.0), atol=1e-12)
    assert (np.sign(out[keep]) == np.sign(d[keep])).all()
    literal = EnergyThresholdDCT(energy=0.95).double()(x).numpy()
    small = keep & (np.abs(d) < 1)
    assert small.any() and (np.sign(literal[small]) == -np.sign(d[small])).all()
    with pytest.raises(ValueError, match="log must be"):
        EnergyThresholdDCT(log="ln")


def test_energy_threshold_dct_threshold_is_configurable():
    x = torch.rand(1, 3, 16, 16)
    nonzero = [(EnergyThresholdDCT(energy=e)(x) != 0).sum().item() for e in (0.5, 0.95, 0.999)]
    assert nonzero[0] <= nonzero[1] <= nonzero[2] and nonzero[0] < nonzero[2]


def test_energy_threshold_dct_gradient_flows_through_kept_coefficients():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    EnergyThresholdDCT()(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_energy_threshold_dct_rejects_bad_args():
    with pytest.raises(ValueError, match="energy"):
        EnergyThresholdDCT(energy=0)
    with pytest.raises(ValueError, match="eps"):
        EnergyThresholdDCT(eps=0)
