"""ONNX export of a whole fold model, and its onnxruntime runner.

The exported graph takes the images exactly as the predictor holds them (input ``images``: uint8
B x H x W x 3 RGB) and contains the model input conversion (to float in [0, 1]), the
stain-deconvolution and DCT layers, the network and ``log_softmax``. It has two outputs:
``log_probs`` (B x K) and, when the model's ``forward_features`` gives feature maps, ``spectral``
(B x h*w, the spectral-averaged features of Gehlot et al. 2020 section 3.4) so the auxiliary SVM
also runs on the ONNX path.

Export uses the TorchScript-based exporter (``dynamo=False``) at opset 17 with a dynamic batch
axis. The SD layer learns the inverse stain matrix directly and the DCT is a matrix product, so no
unsupported op (matrix inverse, FFT) appears (see REFERENCES.md, "Export").

Fitted model inputs that do not trace (Spike-PCA-ResNet's edge-latency coding builds its Gabor
kernels at run time) fall back to a graph of the network alone (input ``inputs``: the float tensor
the model input produces); :class:`OnnxModel` then runs that input step in PyTorch first. Plain RGB
models never fall back: their export must succeed.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["ONNX_OPSET", "OnnxModel", "export_onnx"]

logger = logging.getLogger(__name__)

ONNX_OPSET = 17


def _wrapper(model, model_input: Callable | None, spectral: bool):
    import torch
    from torch import nn

    from blastscope.layers.spectral_average import SpectralAverage, spectral_mode

    class _Exported(nn.Module):
        """uint8 images (or the model input's output) -> (log-probabilities, spectral features)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.average = SpectralAverage(spectral_mode(model))

        def forward(self, x: torch.Tensor):
            maps = self.model.forward_features(model_input(x) if model_input is not None else x)
            logp = torch.log_softmax(self.model.forward_head(maps), dim=1)
            return (logp, self.average(maps)) if spectral else logp

    return _Exported().eval()


def _export(wrapper, example, input_name: str, outputs: list[str], path: Path) -> None:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in layers become constants: intended
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is chosen deliberately (module docstring)
        torch.onnx.export(wrapper, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[input_name], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in [input_name, *outputs]})


def export_onnx(model, model_input, image_size: int, path: Path | str) -> str:
    """Export ``model`` (eval mode, weights loaded) with its ``model_input`` to ``path``.

    Args:
        model: timm-style model returning logits.
        model_input: callable turning a uint8 B x H x W x 3 tensor into the model's input
            (:class:`blastscope.engine.inputs.ModelInput`); traced into the graph when it can be.
        image_size: side H = W of the images the model is fed.

    Returns the graph's input name: ``"images"`` (whole pipeline) or ``"inputs"`` (network alone).
    Raises ``ValueError`` naming the model if no graph can be exported.
    """
    import torch

    from blastscope.engine.inputs import RGBInput

    path = Path(path)
    model.eval()
    example = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    with torch.inference_mode():
        features = model_input(example)
        spectral = model.forward_features(features).dim() == 4
    outputs = ["log_probs", "spectral"] if spectral else ["log_probs"]
    try:
        _export(_wrapper(model, model_input, spectral), example, "images", outputs, path)
        _check_parity(model, model_input, path, image_size)
        return "images"
    except Exception as e:  # the exporter raises many types; the message is what matters
        if isinstance(model_input, RGBInput):
            raise ValueError(f"ONNX export of {type(model).__name__} failed: {e}") from e
        logger.warning("model input %s does not export to ONNX (%s); exporting the network alone, the ONNX "
                       "path runs the input step in PyTorch", type(model_input).__name__, str(e).splitlines()[0][:200])
    try:
        _export(_wrapper(model, None, spectral), features.contiguous(), "inputs", outputs, path)
        _check_parity(model, model_input, path, image_size)
    except Exception as e:
        raise ValueError(f"ONNX export of {type(model).__name__} failed: {e}") from e
    return "inputs"


def _check_parity(model, model_input, path: Path, image_size: int, atol: float = 1e-3) -> None:
    """Compare the graph with PyTorch on random images: tracing silently turns non-torch code
    (e.g. NumPy inside a model input) into constants, which only a numerical check reveals."""
    import torch

    images = np.random.default_rng(0).integers(0, 256, (3, image_size, image_size, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = torch.log_softmax(model(model_input(torch.from_numpy(images))), dim=1).numpy()
    got, _ = OnnxModel(path, model_input=model_input)(images)
    worst = float(np.abs(got - expected).max())
    if not worst < atol:
        raise ValueError(f"the exported graph disagrees with PyTorch on random images (max |d log p| = {worst:.3g})")


class OnnxModel:
    """An exported fold model run with onnxruntime on the CPU.

    ``__call__(images)``: uint8 B x H x W x 3 -> (log-probabilities B x K float32, spectral
    features B x P float32 or None). A network-only graph (input ``inputs``) needs the fold's
    ``model_input`` (run in PyTorch before the graph).
    """

    def __init__(self, path: Path | str, num_classes: int | None = None, model_input: Callable | None = None) -> None:
        import onnxruntime as ort

        from blastscope.inference.manifest import BundleError

        self.path = Path(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: spinning threads would hold the cores that
        # PyTorch, NumPy's BLAS and OpenCV need between calls (a 1.5x slowdown measured on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        from blastscope.engine.threads import onnx_threads

        options.intra_op_num_threads = onnx_threads()  # --threads (0: onnxruntime's default)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise BundleError(f"{self.path}: not a loadable ONNX model ({e})") from None
        inputs = [i.name for i in self.session.get_inputs()]
        names = [o.name for o in self.session.get_outputs()]
        if inputs not in (["images"], ["inputs"]) or not names or names[0] != "log_probs":
            raise BundleError(f"{self.path}: unexpected graph signature (inputs {inputs}, outputs {names})")
        self.input_name = inputs[0]
        if self.input_name == "inputs" and model_input is None:
            raise BundleError(f"{self.path}: a network-only graph needs the fold's model input")
        self.model_input = model_input
        self.has_spectral = "spectral" in names
        out_shapes = {o.name: o.shape for o in self.session.get_outputs()}
        k = out_shapes["log_probs"][1]
        if num_classes is not None and isinstance(k, int) and k != num_classes:
            raise BundleError(f"{self.path}: gives {k} classes, the bundle names {num_classes}")
        p = out_shapes.get("spectral", [None, None])[1]
        self.n_spectral = p if isinstance(p, int) else -1

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(images, dtype=np.uint8)
        if self.input_name == "inputs":
            import torch

            with torch.inference_mode():
                x = np.ascontiguousarray(self.model_input(torch.from_numpy(x)).numpy(), dtype=np.float32)
        out = self.session.run(None, {self.input_name: x})
        return out[0], (out[1] if self.has_spectral else None)
