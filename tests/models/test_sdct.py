"""Tests for blastscope.models.sdct (base network, SD-Net, SDCT-Net of Gehlot et al. 2020)."""
import numpy as np
import pytest
import torch

from blastscope.layers.dct import DCT2d
from blastscope.layers.stain_deconvolution import StainDeconvolution
from blastscope.models import create_model
from blastscope.models.base_network import BasicNetwork, count_parameters
from blastscope.models.sdct import FrontEndNet


def test_sd_layer_adds_nine_parameters_and_dct_none():
    """SD layer: a 3 x 3 inverse stain matrix (no bias); the DCT layer has no parameters."""
    assert count_parameters(create_model("base_network")) == 95_362
    assert count_parameters(create_model("sd_net")) == 95_362 + 9
    assert count_parameters(create_model("sdct_net")) == 95_362 + 9


def test_sdct_front_matches_table_3_and_chains_sd_then_signed_dct():
    model = create_model("sdct_net").eval()
    sd, dct = model.front[0], model.front[1]
    assert isinstance(sd, StainDeconvolution) and sd.apply_tanh
    assert isinstance(dct, DCT2d) and dct.output == "signed_log"  # released-code default
    x = torch.rand(1, 3, 350, 350)
    with torch.no_grad():
        z = sd(x)
        d = model.front(x)
    assert z.shape == d.shape == (1, 3, 350, 350)  # Table 3: SD-layer and DCT-layer outputs
    torch.testing.assert_close(d, DCT2d(output="signed_log")(z))
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, 64, 10, 10)


def test_sdct_dct_output_kwarg_selects_paper_equation_1():
    model = create_model("sdct_net", dct_output="log_abs")
    assert model.front[1].output == "log_abs"
    assert (model.front(torch.rand(1, 3, 16, 16)) >= 0).all()


def test_stain_matrix_kwarg_initialises_the_inverse():
    m = np.array([[0.6, 0.6, 0.5], [0.5, 0.8, 0.35], [-0.7, 0.15, 0.7]])
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    model = create_model("sd_net", stain_matrix=m)
    np.testing.assert_allclose(model.front.inverse_matrix.numpy(), np.linalg.inv(m), rtol=1e-5, atol=1e-6)


def test_front_end_net_delegates_and_validates():
    backbone = BasicNetwork(num_classes=3)
    model = FrontEndNet(torch.nn.Identity(), backbone).eval()
    x = torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(model(x), backbone(x))
    assert model.num_classes == 3 and model.num_features == 4096
    with pytest.raises(ValueError, match="forward_features"):
        FrontEndNet(torch.nn.Identity(), torch.nn.Linear(2, 2))
