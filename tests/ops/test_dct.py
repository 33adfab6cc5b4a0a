"""Tests for blastscope.ops.dct: DCT-II matrices, log normalisations and LeukoNet's energy mask."""
import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blastscope.ops.dct import dct2, dct_matrix, energy_threshold_mask, log_magnitude


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_dct_matrix_matches_scipy_and_is_orthonormal(n):
    t = dct_matrix(n, torch.float64)
    np.testing.assert_allclose(t.numpy(), scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0), atol=1e-12)
    np.testing.assert_allclose((t @ t.T).numpy(), np.eye(n), atol=1e-12)


def test_dct_matrix_350_orthonormal_in_float32():
    """Invariant: the paper's 350 x 350 matrix is orthonormal to float32 precision."""
    t = dct_matrix(350)
    assert t.dtype == torch.float32
    torch.testing.assert_close(t @ t.T, torch.eye(350), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5, 5), (1, 3, 9, 4)])
def test_dct2_matches_scipy_dctn(shape):
    x = np.random.default_rng(1).normal(size=shape)
    expected = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), expected, atol=1e-12)


def test_dct2_gradcheck_float64():
    x = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2, (x,))


def test_dct2_rejects_mismatched_matrices():
    with pytest.raises(ValueError, match="DCT matrices"):
        dct2(torch.zeros(4, 5), dct_matrix(5), dct_matrix(5))


def test_log_magnitude_unsigned_and_signed_forms():
    d = torch.tensor([-99.0, -0.5, 0.0, 0.5, 9.0], dtype=torch.float64)
    unsigned = np.log10(1 + np.abs(d.numpy()))
    np.testing.assert_allclose(log_magnitude(d, signed=False).numpy(), unsigned, rtol=1e-14)
    np.testing.assert_allclose(log_magnitude(d, signed=True).numpy(), np.sign(d.numpy()) * unsigned, rtol=1e-14)


def _check_fewest(d: np.ndarray, mask: np.ndarray, energy: float) -> None:
    e = d.astype(np.float64).ravel() ** 2
    kept = mask.ravel()
    total = e.sum()
    assert e[kept].sum() >= energy * total * (1 - 1e-12)
    if kept.any():
        # dropping the smallest kept coefficient must fall below the target: the set is the fewest
        # (unless it is below float64 resolution of the total, when either answer is exact)
        smallest = e[kept].min()
        assert e[kept].sum() - smallest < energy * total or smallest <= 1e-12 * total
        # and kept coefficients are the largest ones
        assert e[~kept].max(initial=0.0) <= e[kept].min()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    energy=st.floats(0.05, 1.0),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
)
def test_energy_mask_keeps_fewest_coefficients_with_target_energy(seed, energy, h, w):
    """Invariant: kept energy >= energy * total, and removing the smallest kept one falls below."""
    d = np.random.default_rng(seed).normal(size=(2, 3, h, w)) ** 3  # heavy-tailed, like DCT spectra
    mask = energy_threshold_mask(torch.from_numpy(d), energy).numpy()
    assert mask.shape == d.shape and mask.dtype == bool
    for b in range(2):
        for c in range(3):
            _check_fewest(d[b, c], mask[b, c], energy)


def test_energy_mask_on_real_dct_spectrum_at_95_percent():
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    d = dct2(x)
    mask = energy_threshold_mask(d, 0.95)
    for c in range(3):
        _check_fewest(d[0, c].numpy(), mask[0, c].numpy(), 0.95)
    assert mask.sum() < mask.numel()  # the DC term dominates; most coefficients are dropped


def test_energy_mask_ties_keep_exactly_k_in_row_major_order():
    """Four equal coefficients, 50 % energy: exactly two are kept, the first two in row-major order."""
    d = torch.tensor([[[[0.0, 2.0], [-2.0, 2.0]], [[2.0, 0.0], [2.0, 0.0]]]], dtype=torch.float32)
    d = torch.cat([d, torch.full((1, 1, 2, 2), 3.0)], dim=1)
    mask = energy_threshold_mask(d, 0.5)
    assert mask[0, 0].tolist() == [[False, True], [True, False]]
    assert mask[0, 1].tolist() == [[True, False], [False, False]]
    assert mask[0, 2].tolist() == [[True, True], [False, False]]


def test_energy_mask_zero_map_keeps_nothing_and_full_energy_keeps_nonzeros():
    d = torch.zeros(1, 2, 3, 3)
    d[0, 1, 0, 0] = 1.0
    d[0, 1, 2, 1] = -1e-3
    assert not energy_threshold_mask(d, 0.9)[0, 0].any()
    assert energy_threshold_mask(d, 1.0)[0, 1].sum() == 2


def test_energy_mask_rejects_bad_energy():
    with pytest.raises(ValueError, match="energy"):
        energy_threshold_mask(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="energy"):
        energy_threshold_mask(torch.zeros(2, 2), 1.5)


@pytest.mark.parametrize("shape", [(3, 2, 350, 350), (2, 1, 8, 6), (1, 2, 4, 10)])
def test_dct2_even_sizes_take_the_half_size_products_and_match_scipy(shape):
    """Even H and W use the even/odd split (two m x m products per axis): same values as scipy and
    as the plain matrix products, in float64 and within float32 rounding."""
    x = np.random.default_rng(3).normal(size=shape)
    expected = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), expected, atol=1e-11)
    x32 = torch.from_numpy(x).float()
    h, w = shape[-2:]
    plain = dct_matrix(h) @ x32 @ dct_matrix(w).T
    torch.testing.assert_close(dct2(x32), plain, atol=1e-5 * float(plain.abs().max()), rtol=0)


def test_dct2_even_odd_gradcheck_float64():
    x = torch.randn(2, 1, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2, (x,))


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 2, 350, 350), (3, 10, 6)])
def test_dct2_prefolded_equals_scipy_on_the_natural_order(shape):
    """Pixels handed over in fold order give the natural-order DCT (checked against scipy)."""
    from blastscope.ops.dct import dct2_prefolded, fold_order

    x = torch.randn(*shape, dtype=torch.float64)
    h, w = shape[-2:]
    folded = x[..., fold_order(h), :][..., fold_order(w)]
    got = dct2_prefolded(folded, dct_matrix(h, torch.float64), dct_matrix(w, torch.float64))
    np.testing.assert_allclose(got.numpy(), scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho"), atol=1e-10)


def test_fold_order_is_head_then_reversed_tail_and_needs_even_sizes():
    from blastscope.ops.dct import dct2_prefolded, fold_order

    assert fold_order(6).tolist() == [0, 1, 2, 5, 4, 3]
    with pytest.raises(ValueError, match="even length"):
        fold_order(5)
    with pytest.raises(ValueError, match="even H and W"):
        dct2_prefolded(torch.zeros(1, 5, 6), dct_matrix(5), dct_matrix(6))


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5, 5), (1, 3, 9, 4), (2, 3, 350, 350), (1, 1, 1, 3)])
def test_dct2_torch_fft_matches_scipy_dctn(shape):
    """The GPU's FFT path (torch.fft, Makhoul's reordering), checked here on the CPU against scipy."""
    from blastscope.ops.dct import dct2_torch_fft

    x = np.random.default_rng(2).normal(size=shape)
    expected = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2_torch_fft(torch.from_numpy(x)).numpy(), expected, atol=1e-10)
    got32 = dct2_torch_fft(torch.from_numpy(x).float()).numpy()
    assert np.abs(got32 - expected).max() <= 2e-5 * max(1.0, np.abs(expected).max())
    half = dct2_torch_fft(torch.from_numpy(x).to(torch.bfloat16))
    assert half.dtype == torch.float32


def test_dct2_torch_fft_gradcheck_float64():
    from blastscope.ops.dct import dct2_torch_fft

    x = torch.randn(2, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2_torch_fft, (x,))
