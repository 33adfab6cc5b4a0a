"""Static int8 for PyTorch: the base network's convolutions quantized, stored without pickle.

A quantized PyTorch module has no pickle-free file format, so a bundle stores only what
calibration found: the scale and zero point of every activation the int8 network quantizes
(``int8_fold<k>.safetensors``). The int8 network is rebuilt from the fold's float32 weights at
load: each Conv + BatchNorm + ReLU block is fused (:func:`torch.ao.quantization.fuse_modules`) and
converted by PyTorch's own ``ConvReLU2d.from_float``, which quantizes the folded weights per
channel with the observer of PyTorch's default x86 recipe (``get_default_qconfig("x86")``); the
stored activation parameters are those its ``HistogramObserver`` chose on the calibration cells.
So loading repeats exactly what export measured. A test checks the network against PyTorch's FX
graph-mode quantization of the same block (``prepare_fx``/``convert_fx``), an independent path.

What is quantized: the six convolutions and four max-pools of every
:class:`~blastscope.models.base_network.BasicNetwork` with ReLU activations (SDCT-AuxNet-theta's
CNNs, LeukoNet's stages); the stain layer, the DCT and log, the bilinear pooling, the linear layer
and the SVM's spectral features stay float32 (they read the dequantized maps). Keeping the last
block in float32 was measured and did not help (the SVM's labels held either way on the quick
bundle's check cells; its probabilities moved by up to 0.04 in both). Models without such
a network (or with PReLU/PTeLU) have nothing to quantize and are refused.

Accepted only where accuracy holds, by the same rule as the ONNX graphs
(:func:`blastscope.inference.int8.int8_checks`); see ``export_bundle(int8=True)``.
"""
from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from blastscope.models.base_network import BasicNetwork, ConvBNAct

__all__ = ["ENGINE", "FORMAT", "Int8Error", "TorchRunner", "calibrate", "engine_available", "int8_networks", "load_qparams",
           "quantize_model", "save_qparams"]

ENGINE = "x86"
FORMAT = "blastscope-torch-int8"


class Int8Error(ValueError):
    """The model cannot run in int8 here (nothing to quantize, no x86 engine, bad parameters)."""


@contextmanager
def _quiet():
    # torch.ao.quantization warns on every call that its eager and FX APIs move to torchao; torchao's
    # pt2e flow needs torch.compile to run fast on a CPU, so these modules remain the eager int8 path
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(migrat|torchao|deprecat).*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*_empty_affine_quantized.*")
        yield


def int8_networks(model: nn.Module) -> list[tuple[str, BasicNetwork]]:
    """The base networks of ``model`` int8 can quantize: (module path, network), ReLU only.

    Raises:
        Int8Error: none, or one with another activation (named).
    """
    nets = [(name, m) for name, m in model.named_modules() if isinstance(m, BasicNetwork)]
    if not nets:
        raise Int8Error(f"{type(model).__name__} has no base network (six Conv-BN-ReLU blocks) for int8 to quantize")
    for name, net in nets:
        acts = {type(block[2]).__name__ for block in net.features if isinstance(block, ConvBNAct)}
        if acts != {"ReLU"}:
            raise Int8Error(f"int8 quantizes ReLU networks only; {name or 'the model'} uses {', '.join(sorted(acts))}")
    return nets


def engine_available() -> bool:
    """Whether this PyTorch has the x86 quantized engine the int8 parameters were checked with
    (ARM builds, e.g. Apple silicon or Graviton, have qnnpack only)."""
    return ENGINE in torch.backends.quantized.supported_engines


def _check_engine() -> None:
    if not engine_available():
        raise Int8Error(f"this PyTorch has no {ENGINE} quantized engine (has {torch.backends.quantized.supported_engines}), "
                        "which PyTorch int8 was checked with; predict with --precision float32")
    torch.backends.quantized.engine = ENGINE


def _qconfig():
    from torch.ao.quantization import get_default_qconfig

    with _quiet():
        return get_default_qconfig(ENGINE)


def _points(net: BasicNetwork) -> list[str]:
    """Names of the activations quantized in ``net``: its input, then each Conv-BN-ReLU block's output."""
    return ["input"] + [name for name, block in net.features.named_children() if isinstance(block, ConvBNAct)]


def _fused(features: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """``features``' blocks in float32 as int8 converts them: each Conv-BN-ReLU fused by PyTorch
    (BatchNorm folded into the convolution, then ReLU), max-pools as they are (copies)."""
    from torch.ao.quantization import fuse_modules

    blocks = []
    for name, block in features.named_children():
        if isinstance(block, ConvBNAct):
            plain = nn.Sequential(*(copy.deepcopy(m) for m in block)).eval()
            blocks.append((name, fuse_modules(plain, [["0", "1", "2"]])[0]))
        elif isinstance(block, nn.MaxPool2d):
            blocks.append((name, copy.deepcopy(block)))
        else:
            raise Int8Error(f"int8 cannot quantize {type(block).__name__} (block {name})")
    return blocks


class _Observed(nn.Module):
    """The fused float32 blocks with an observer on their input and on each Conv-BN-ReLU output. A
    max-pool keeps its input's quantization, so the observer of the block before it also sees its
    output (as FX graph-mode quantization shares one observer between them)."""

    def __init__(self, features: nn.Sequential, make_observer) -> None:
        super().__init__()
        self.blocks = _fused(features)
        self.observers = {"input": make_observer()}
        self.observers.update({name: make_observer() for name, block in self.blocks if not isinstance(block, nn.MaxPool2d)})

    def forward(self, x: Tensor) -> Tensor:
        x = self.observers["input"](x)
        last = "input"
        for name, block in self.blocks:
            x = block(x)
            last = last if isinstance(block, nn.MaxPool2d) else name
            x = self.observers[last](x)
        return x


def calibrate(model: nn.Module, model_input, images: np.ndarray, batch: int = 16) -> dict[str, Tensor]:
    """Scale and zero point of every quantized activation, observed on ``images`` (uint8 N x S x S x 3).

    Runs a float32 copy of the model (eval mode) whose base networks are the fused blocks int8
    converts, with one ``HistogramObserver`` of PyTorch's x86 recipe on each network's input and on
    each Conv-BN-ReLU output (what FX graph-mode quantization observes). Returns
    ``{"<net path>/<point>.scale": float32 (1,), ".zero_point": int64 (1,)}`` (the safetensors file).
    """
    from blastscope.engine.tensors import to_model_input

    if len(images) == 0:
        raise Int8Error("int8 calibration needs at least one cell")
    qconfig = _qconfig()
    observed = copy.deepcopy(model).cpu().eval()
    nets = int8_networks(observed)
    with _quiet():
        for _, net in nets:
            net.features = _Observed(net.features, qconfig.activation)
        with torch.inference_mode():
            for i in range(0, len(images), batch):
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))
                observed.forward_features(model_input(x) if model_input is not None else to_model_input(x))
        out = {}
        for path, net in nets:
            for point, obs in net.features.observers.items():
                scale, zero = obs.calculate_qparams()
                out[f"{path}/{point}.scale"] = scale.reshape(1).to(torch.float32).clone()
                out[f"{path}/{point}.zero_point"] = zero.reshape(1).to(torch.int64).clone()
    return out


class _Fixed(nn.Module):
    """An observer that answers stored quantization parameters (what ``from_float`` reads)."""

    def __init__(self, scale: Tensor, zero_point: Tensor) -> None:
        super().__init__()
        self.dtype = torch.quint8
        self.qscheme = torch.per_tensor_affine
        self.scale, self.zero_point = scale, zero_point

    def calculate_qparams(self) -> tuple[Tensor, Tensor]:
        return self.scale, self.zero_point


class Int8Features(nn.Module):
    """A base network's ``features`` in int8: quantize, fused int8 Conv-ReLU blocks and max-pools, dequantize."""

    def __init__(self, features: nn.Sequential, qparams: dict[str, Tensor], prefix: str) -> None:
        import torch.ao.nn.intrinsic.quantized as nniq
        import torch.ao.nn.quantized as nnq

        super().__init__()

        def param(point: str) -> tuple[Tensor, Tensor]:
            try:
                scale, zero = qparams[f"{prefix}/{point}.scale"], qparams[f"{prefix}/{point}.zero_point"]
            except KeyError as e:
                raise Int8Error(f"no int8 parameters for {e.args[0]}") from None
            if scale.shape != (1,) or zero.shape != (1,) or not float(scale) > 0 or not 0 <= int(zero) <= 255:
                raise Int8Error(f"bad int8 parameters for {prefix}/{point}: scale {scale.tolist()}, zero point {zero.tolist()}")
            return scale, zero

        scale, zero = param("input")
        self.quant = nnq.Quantize(float(scale), int(zero), torch.quint8)
        qconfig = _qconfig()
        layers = []
        for name, block in _fused(features):
            if isinstance(block, nn.MaxPool2d):
                layers.append(block)
                continue
            block.qconfig = block[0].qconfig = qconfig  # from_float reads the weight observer off the conv
            block.activation_post_process = _Fixed(*param(name))
            layers.append(nniq.ConvReLU2d.from_float(block))
        self.layers = nn.Sequential(*layers)
        self.dequant = nnq.DeQuantize()

    def forward(self, x: Tensor) -> Tensor:
        return self.dequant(self.layers(self.quant(x)))


def quantize_model(model: nn.Module, qparams: dict[str, Tensor]) -> nn.Module:
    """A copy of ``model`` (eval mode, CPU) whose base networks run int8 with ``qparams`` (:func:`calibrate`)."""
    _check_engine()
    out = copy.deepcopy(model).cpu().eval()
    expected = {f"{path}/{point}.{kind}" for path, net in int8_networks(out) for point in _points(net)
                for kind in ("scale", "zero_point")}
    if set(qparams) != expected:
        missing, extra = sorted(expected - set(qparams)), sorted(set(qparams) - expected)
        raise Int8Error(f"int8 parameters do not fit the model (missing {missing[:3]}, unexpected {extra[:3]})")
    with _quiet():
        for path, net in int8_networks(out):
            net.features = Int8Features(net.features, qparams, path)
    return out


def save_qparams(path: Path | str, qparams: dict[str, Tensor], meta: dict | None = None) -> None:
    from safetensors.torch import save_file

    from blastscope.engine.atomic import atomic_write

    tensors = {k: v.contiguous() for k, v in qparams.items()}
    atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata={"format": FORMAT, "engine": ENGINE,
                                                                            "info": json.dumps(meta or {})}))


def load_qparams(path: Path | str) -> dict[str, Tensor]:
    """Read an ``int8_fold<k>.safetensors`` (tensors and JSON metadata only; nothing executes)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT or meta.get("engine") != ENGINE:
                raise Int8Error(f"{path}: not a {FORMAT} file for the {ENGINE} engine (metadata {meta})")
            return {k: fh.get_tensor(k) for k in fh.keys()}
    except (OSError, RuntimeError, SafetensorError) as e:
        raise Int8Error(f"{path}: cannot read int8 parameters ({e})") from None


class TorchRunner:
    """``runner(uint8 images) -> (log-probabilities, spectral features)``: a torch fold model as
    :func:`~blastscope.inference.int8.int8_checks` calls the ONNX ones."""

    def __init__(self, model: nn.Module, model_input) -> None:
        self.model, self.model_input = model, model_input

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        from blastscope.engine.inference import predict_arrays
        from blastscope.engine.tensors import to_model_input

        return predict_arrays(self.model, images, batch_size=len(images), spectral=True,
                              input_fn=self.model_input if self.model_input is not None else to_model_input)
