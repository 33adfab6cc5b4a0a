"""Tests for blastscope.ops.gabor (Noshad & Fallahi 2021, Eqs. 1-2; SpykeTorch Gabor conventions)."""
import math

import numpy as np
import pytest
import torch

from blastscope.ops.gabor import gabor_bank, gabor_kernel, spyketorch_gabor_params


def _raw_gabor(r: float, c: float, theta_deg: float, wavelength: float, sigma: float, gamma: float) -> float:
    t = math.radians(theta_deg)
    x_rot = r * math.cos(t) + c * math.sin(t)
    y_rot = c * math.cos(t) - r * math.sin(t)
    return math.exp(-(x_rot**2 + gamma**2 * y_rot**2) / (2 * sigma**2)) * math.cos(2 * math.pi * x_rot / wavelength)


def _reference(window: int, theta_deg: float, wavelength: float, sigma: float, gamma: float = 0.3) -> np.ndarray:
    half = (window - 1) / 2
    raw = np.empty((window, window))
    for i in range(window):
        for j in range(window):
            raw[i, j] = _raw_gabor(i - half, j - half, theta_deg, wavelength, sigma, gamma)
    raw -= raw.mean()
    return raw / raw.max()


def test_hand_checked_points_theta_zero():
    """At theta = 0 the carrier runs down the rows: raw G(r, c) = exp(-(r^2 + 0.09 c^2) / 8) cos(2 pi r / 2.5)."""
    raw = np.empty((5, 5))
    for i in range(5):
        for j in range(5):
            r, c = i - 2, j - 2
            raw[i, j] = math.exp(-(r * r + 0.09 * c * c) / 8.0) * math.cos(2 * math.pi * r / 2.5)
    assert raw[2, 2] == 1.0  # exp(0) cos(0)
    assert raw[0, 2] == pytest.approx(math.exp(-0.5) * math.cos(1.6 * math.pi))
    expected = (raw - raw.mean()) / (raw - raw.mean()).max()
    got = gabor_kernel(5, 0.0, 2.5, 2.0, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_even_window_uses_half_integer_offsets():
    """A 4 x 4 window samples offsets -1.5, -0.5, 0.5, 1.5 (the paper's window, not SpykeTorch's 5 x 5)."""
    got = gabor_kernel(4, 67.5, 2.5, 2.0, dtype=torch.float64).numpy()
    assert got.shape == (4, 4)
    np.testing.assert_allclose(got, _reference(4, 67.5, 2.5, 2.0), atol=1e-12)


@pytest.mark.parametrize("window, theta", [(3, 45 + 22.5), (4, 22.5), (5, 112.5), (7, 157.5), (6, 202.5)])
def test_matches_equation_and_normalisation(window, theta):
    """Invariant: every kernel has mean 0 and maximum 1, and equals the equation sampled on the centred grid."""
    got = gabor_kernel(window, theta, 2.5, 2.0, dtype=torch.float64)
    assert abs(float(got.mean())) < 1e-12
    assert float(got.max()) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(got.numpy(), _reference(window, theta, 2.5, 2.0), atol=1e-12)


@pytest.mark.parametrize("window", [3, 4, 5])
def test_point_symmetry_makes_convolution_equal_correlation(window):
    """Invariant: G(-r, -c) = G(r, c), so flipping both axes leaves the kernel unchanged."""
    k = gabor_kernel(window, 67.5, 2.5, 2.0, dtype=torch.float64)
    torch.testing.assert_close(k, torch.flip(k, dims=(0, 1)), rtol=0, atol=1e-12)


def test_spyketorch_params():
    assert spyketorch_gabor_params(5) == (2.5, 2.0)
    wavelength, sigma = spyketorch_gabor_params(4)
    assert wavelength == 2.0 and sigma == pytest.approx(1.6)


def test_bank_shape_order_and_paper_orientation_set():
    """The SpykeTorch set 45..180 + 22.5 equals the paper's Eq. 2 set (l-1) pi/4 + pi/8, as kernels."""
    bank = gabor_bank(4, 2.5, 2.0)
    assert bank.shape == (4, 1, 4, 4) and bank.dtype == torch.float32
    for i, o in enumerate((67.5, 112.5, 157.5, 202.5)):
        torch.testing.assert_close(bank[i, 0], gabor_kernel(4, o, 2.5, 2.0))
    paper = [math.degrees((l - 1) * math.pi / 4 + math.pi / 8) for l in range(1, 5)]
    paper_bank = torch.stack([gabor_kernel(4, t, 2.5, 2.0) for t in paper])
    # SpykeTorch's last orientation 202.5 is the paper's first, 22.5 (period 180 degrees).
    torch.testing.assert_close(bank[:, 0], paper_bank[[1, 2, 3, 0]], atol=1e-6, rtol=0)


def test_bank_spyketorch_defaults():
    bank = gabor_bank(5, wavelength=None, sigma=None)
    torch.testing.assert_close(bank[0, 0], gabor_kernel(5, 67.5, 2.5, 2.0))
    bank_sigma = gabor_bank(4, wavelength=3.0, sigma=None)
    torch.testing.assert_close(bank_sigma[1, 0], gabor_kernel(4, 112.5, 3.0, 2.4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(window=1), "window"),
        (dict(wavelength=0.0), "wavelength"),
        (dict(sigma=-1.0), "sigma"),
        (dict(gamma=0.0), "gamma"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    args = dict(window=4, orientation_deg=0.0, wavelength=2.5, sigma=2.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gabor_kernel(**args)


def test_bank_rejects_empty_orientations():
    with pytest.raises(ValueError, match="orientations"):
        gabor_bank(orientations=())
