"""Numerical edges of the stain layer and the full SD-Net / SDCT-Net: all-black, fully saturated and darkest
possible cells give finite outputs and finite gradients (no NaN, no inf), in training and in prediction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from blastscope.data.decode import read_image
from blastscope.engine.inference import predict_arrays
from blastscope.layers.stain_deconvolution import StainDeconvolution
from blastscope.models import create_model
from blastscope.ops.stain import macenko_stain_matrix

SIZE = 64


def _cells() -> dict[str, torch.Tensor]:
    """B x 3 x H x W float cells in [0, 1]: the extremes a pipeline can produce from uint8 files."""
    shape = (2, 3, SIZE, SIZE)
    single = torch.zeros(shape)
    single[:, 0] = 1.0  # one channel saturated, the others black
    dark = torch.full(shape, 1 / 255)
    dark[:, :, ::2] = 0.0  # darkest non-zero value next to exact zeros
    tiny = torch.full(shape, 1e-30)  # far below any 8-bit value (e.g. after a float transform)
    return {"black": torch.zeros(shape), "saturated": torch.ones(shape), "one_channel": single, "darkest": dark, "tiny": tiny}


CELLS = _cells()


@pytest.fixture(scope="module")
def real_stain(shared) -> np.ndarray:
    cell = read_image(sorted(shared("cnmc-samples", "labeled").glob("*.bmp"))[0])
    return macenko_stain_matrix(cell)


def _finite(t: torch.Tensor | None, what: str) -> None:
    assert t is not None, f"{what}: no gradient"
    assert torch.isfinite(t).all(), f"{what}: {int((~torch.isfinite(t)).sum())} non-finite values"


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reference", [False, True])
def test_stain_layer_is_finite_with_finite_gradients(name, reference, real_stain):
    layer = StainDeconvolution(stain_matrix=real_stain if reference else None)
    x = CELLS[name].clone().requires_grad_(True)
    y = layer(x)
    _finite(y, "output")
    assert y.abs().max() <= 1.0  # tanh (which saturates to exactly 1 in float32 at OD 6)
    y.sum().backward()
    _finite(x.grad, "input gradient")
    _finite(layer.conv.weight.grad, "weight gradient")


def test_black_and_white_both_mean_no_stain():
    """OD(0) := 0 (background) and OD(1) = 0 (no absorbance): both give zero stain quantities exactly."""
    layer = StainDeconvolution()
    assert layer(CELLS["black"]).abs().max() == 0 and layer(CELLS["saturated"]).abs().max() == 0


@pytest.mark.parametrize("model_name,dct_output", [("sd_net", None), ("sdct_net", "signed_log"), ("sdct_net", "log_abs")])
def test_full_network_trains_and_predicts_on_extreme_cells(model_name, dct_output, real_stain):
    kwargs = {"dct_output": dct_output} if model_name == "sdct_net" else {}
    torch.manual_seed(0)
    model = create_model(model_name, stain_matrix=real_stain, **kwargs)
    x = torch.cat([CELLS[n] for n in sorted(CELLS)])
    y = torch.arange(len(x)) % 2
    for batch in (x, CELLS["black"], CELLS["saturated"]):  # mixed batch, then constant batches (zero BatchNorm variance)
        model.train()
        model.zero_grad()
        inp = batch.clone().requires_grad_(True)
        logits = model(inp)
        _finite(logits, "logits")
        loss = F.cross_entropy(logits, y[: len(batch)])
        assert torch.isfinite(loss)
        loss.backward()
        _finite(inp.grad, "input gradient")
        for pname, p in model.named_parameters():
            if p.requires_grad:
                _finite(p.grad, pname)
    images = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    logp, feats = predict_arrays(model, images, batch_size=4, spectral=True)
    assert np.isfinite(logp).all() and np.isfinite(feats).all()
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("value", [0, 255])
def test_macenko_refuses_a_cell_with_no_stain(value):
    """The run falls back to the default matrix when the reference cell has no stained pixels (ValueError)."""
    with pytest.raises(ValueError):
        macenko_stain_matrix(np.full((32, 32, 3), value, np.uint8))
