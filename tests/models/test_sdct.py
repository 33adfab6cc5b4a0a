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
    assert create_model("sdct_net").front[1].output == "log_abs"  # the paper's eq. 1 by default
    model = create_model("sdct_net", dct_output="signed_log").eval()
    sd, dct = model.front[0], model.front[1]
    assert isinstance(sd, StainDeconvolution) and sd.apply_tanh
    assert isinstance(dct, DCT2d) and dct.output == "signed_log"  # the released code's
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


def test_released_initialisation_is_he_fan_out_and_linear_n_0_001():
    """Invariant: init="released" draws every conv with std sqrt(2 / fan_out) and the linear layer
    with std 0.01 (the released code); the default draws convs with std sqrt(2 / fan_in)."""
    import math

    from torch import nn

    torch.manual_seed(0)
    released = create_model("sdct_net", init="released")
    default = create_model("sdct_net")
    for (name, a), (_, b) in zip(released.backbone.features.named_modules(), default.backbone.features.named_modules()):
        if isinstance(a, nn.Conv2d):
            k = a.kernel_size[0] * a.kernel_size[1]
            fan_out, fan_in = a.out_channels * k, a.in_channels * k
            assert float(a.weight.std()) == pytest.approx(math.sqrt(2 / fan_out), rel=0.2), name
            assert float(b.weight.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.2), name
            assert float(a.bias.abs().max()) == 0.0
    fc = released.backbone.fc
    assert float(fc.weight.std()) == pytest.approx(0.01, rel=0.05) and float(fc.bias.abs().max()) == 0.0
    with pytest.raises(ValueError, match="init must be"):
        create_model("sd_net", init="xavier")


def test_recipes_run_the_dct_log_they_name():
    from blastscope.config import resolve_config

    paper = resolve_config("sdct_auxnet").arms[1]
    code = resolve_config("sdct_auxnet_code", "quick").arms[0]
    assert create_model(paper.model, **paper.kwargs).front[1].output == "log_abs"
    assert create_model(code.model, **code.kwargs).front[1].output == "signed_log" and code.kwargs["init"] == "released"
