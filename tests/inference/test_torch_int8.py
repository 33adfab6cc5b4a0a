"""PyTorch int8 (`blastscope.inference.torch_int8`): the rebuilt network against PyTorch's FX graph-mode
quantization of the same blocks, the pickle-free parameter file, and what it refuses."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from blastscope.engine.inputs import build_input
from blastscope.inference import torch_int8 as ti
from blastscope.models import create_model
from blastscope.models.base_network import ConvBNAct

pytestmark = pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines, reason="no x86 quantized engine")


def _model(name: str = "sdct_net", **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, **kwargs)
    for m in model.modules():  # running statistics far from the defaults, so BatchNorm folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_matches_pytorch_fx_graph_mode_quantization():
    """Same calibration cells, same x86 recipe: the observers choose the same parameters and the
    int8 maps equal FX's ``convert_fx`` output (an independent build of the same quantized blocks)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    model, rgb = _model(), build_input("rgb")
    calib, held = _images(24, 1), _images(8, 2)
    qparams = ti.calibrate(model, rgb, calib, batch=8)
    assert len(qparams) == 2 * 7  # the input and six Conv-BN-ReLU outputs, scale and zero point each
    q = ti.quantize_model(model, qparams)
    torch.backends.quantized.engine = "x86"
    with ti._quiet(), torch.inference_mode():
        features = model.backbone.features
        plain = nn.Sequential(*[nn.Sequential(*b) if isinstance(b, ConvBNAct) else b for b in copy.deepcopy(features)]).eval()
        front = [model.front(rgb(torch.from_numpy(calib[i:i + 8]))) for i in range(0, len(calib), 8)]
        prepared = prepare_fx(plain, get_default_qconfig_mapping("x86"), (front[0],))
        for x in front:
            prepared(x)
        from torch.ao.quantization.observer import ObserverBase

        theirs_q = [m.calculate_qparams() for _, m in prepared.named_modules() if isinstance(m, ObserverBase)]
        ours_q = [(qparams[f"backbone/{p}.scale"], qparams[f"backbone/{p}.zero_point"])
                  for p in ["input"] + [f"conv{i}" for i in range(1, 7)]]
        assert [(float(s), int(z)) for s, z in ours_q] == [(float(s), int(z)) for s, z in theirs_q]
        fx = convert_fx(prepared)
        x = model.front(rgb(torch.from_numpy(held)))
        ours, theirs = q.backbone.features(x), fx(x)
        assert torch.equal(ours, theirs)
        fp32 = features(x)
        assert not torch.equal(ours, fp32) and (ours - fp32).abs().max() < 0.1 * fp32.abs().max()
    # the float32 model is untouched; the stain and DCT layers are shared values, not quantized
    assert isinstance(model.backbone.features, nn.Sequential) and isinstance(q.backbone.features, ti.Int8Features)
    front = q.front.state_dict()
    assert front and all(torch.equal(front[k], v) for k, v in model.front.state_dict().items())
    assert torch.equal(q.backbone.fc.weight, model.backbone.fc.weight)


def test_calibration_sees_only_the_cells_it_is_given():
    model, rgb = _model(), build_input("rgb")
    dark, bright = _images(8, 3) // 4, _images(8, 3)
    assert not torch.equal(ti.calibrate(model, rgb, dark)["backbone/input.scale"],
                           ti.calibrate(model, rgb, bright)["backbone/input.scale"])
    a, b = ti.calibrate(model, rgb, bright), ti.calibrate(model, rgb, bright.copy(), batch=3)
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic, whatever the batching
    with pytest.raises(ti.Int8Error, match="at least one cell"):
        ti.calibrate(model, rgb, bright[:0])


def test_parameter_file_round_trip_and_bad_files(tmp_path):
    model, rgb = _model("sd_net"), build_input("rgb")
    qparams = ti.calibrate(model, rgb, _images(8, 4))
    path = tmp_path / "int8_fold1.safetensors"
    ti.save_qparams(path, qparams, {"fold": 1})
    back = ti.load_qparams(path)
    assert set(back) == set(qparams) and all(torch.equal(back[k], qparams[k]) for k in qparams)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors JSON header, no pickle
    x = _images(4, 5)
    a = ti.TorchRunner(ti.quantize_model(model, qparams), rgb)(x)[0]
    b = ti.TorchRunner(ti.quantize_model(model, back), rgb)(x)[0]
    np.testing.assert_array_equal(a, b)

    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({k: v for k, v in qparams.items()}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ti.Int8Error, match=f"{other}: not a blastscope-torch-int8 file"):
        ti.load_qparams(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(ti.Int8Error, match=f"{junk}: cannot read int8 parameters"):
        ti.load_qparams(junk)
    with pytest.raises(ti.Int8Error, match="do not fit the model.*missing"):
        ti.quantize_model(model, {k: v for k, v in qparams.items() if "conv3" not in k})
    bad = {**qparams, "backbone/conv2.scale": torch.tensor([0.0])}
    with pytest.raises(ti.Int8Error, match="bad int8 parameters for backbone/conv2"):
        ti.quantize_model(model, bad)


def test_models_without_a_relu_base_network_are_refused():
    with pytest.raises(ti.Int8Error, match="has no base network"):
        ti.int8_networks(create_model("spike_resnet", num_classes=2))
    with pytest.raises(ti.Int8Error, match="ReLU networks only.*PReLU"):
        ti.int8_networks(create_model("sdct_net", num_classes=2, activation="prelu"))
    assert [name for name, _ in ti.int8_networks(create_model("sdct_net", num_classes=2))] == ["backbone"]
