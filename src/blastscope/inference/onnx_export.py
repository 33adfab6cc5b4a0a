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

Models that read pixels through a leading stain-deconvolution layer (SD-Net, SDCT-Net, the LeukoNet
stages with an SD layer) export a faster graph instead (input ``optical_density``: float32
B x 3 x H x W): the optical density of each uint8 value comes from a 256-entry table that
:class:`OnnxModel` applies in NumPy, and the graph starts at the SD layer's stain mixing. When a
DCT layer follows, the pixels are handed over with rows and columns in
:func:`blastscope.ops.dct.fold_order`, so the graph's even/odd DCT needs no flip. Table and pixel
order travel in the graph's metadata (``blastscope.pixels``). Every step before the mixing is per
pixel, so reordering pixels first changes nothing but speed; the parity check below proves it on
every export.

Fitted model inputs that do not trace (Spike-PCA-ResNet's edge-latency coding builds its Gabor
kernels at run time) fall back to a graph of the network alone (input ``inputs``: the float tensor
the model input produces); :class:`OnnxModel` then runs that input step in PyTorch first. Plain RGB
models never fall back: their export must succeed.
"""
from __future__ import annotations

import json
import logging
import queue
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["ONNX_OPSET", "OnnxModel", "export_onnx"]

logger = logging.getLogger(__name__)

ONNX_OPSET = 17


def _wrapper(model, features: Callable, spectral: bool):
    """The exported module: ``features`` (the graph input -> the model's last feature maps), then the
    head's log-probabilities and, when ``spectral``, the spectral-averaged features."""
    import torch
    from torch import nn

    from blastscope.layers.spectral_average import SpectralAverage, spectral_mode

    class _Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # registers every parameter ``features`` reads (they are the model's)
            self.average = SpectralAverage(spectral_mode(model))

        def forward(self, x: torch.Tensor):
            maps = features(x)
            logp = torch.log_softmax(self.model.forward_head(maps), dim=1)
            return (logp, self.average(maps)) if spectral else logp

    return _Exported().eval()


def _rgb_features(model, model_input: Callable | None) -> Callable:
    """uint8 images (or the model input's output when ``model_input`` is None) -> feature maps."""
    return lambda x: model.forward_features(model_input(x) if model_input is not None else x)


PIXELS_KEY = "blastscope.pixels"
"""Graph metadata key of an ``optical_density`` graph: {"table": 256 floats, "rows", "cols": pixel order or null}."""


def _pixel_front(model, model_input):
    """The front modules of a model that reads RGB through a leading SD layer, else None."""
    from torch import nn

    from blastscope.engine.inputs import RGBInput
    from blastscope.layers.stain_deconvolution import StainDeconvolution
    from blastscope.models.sdct import FrontEndNet

    if not isinstance(model_input, RGBInput) or not isinstance(model, FrontEndNet):
        return None
    modules = list(model.front) if isinstance(model.front, nn.Sequential) else [model.front]
    return modules if isinstance(modules[0], StainDeconvolution) else None


def _od_features(model, modules: list, prefold: bool) -> Callable:
    """Optical densities (pixels in fold order when ``prefold``) -> the model's feature maps."""
    def features(od):
        y = modules[0].forward_od(od)
        rest = modules[1:]
        if prefold:
            y, rest = rest[0](y, prefolded=True), rest[1:]
        for module in rest:
            y = module(y)
        return model.backbone.forward_features(y)

    return features


def _pixel_metadata(modules: list, image_size: int) -> tuple[dict, bool]:
    """The OD table of the SD layer's rule and the pixel order; whether the DCT gets folded pixels."""
    import torch

    from blastscope.engine.tensors import to_model_input
    from blastscope.layers.dct import DCT2d
    from blastscope.ops.dct import fold_order

    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 256, 1).expand(1, 1, 256, 3)
    with torch.inference_mode():  # the very float32 values the PyTorch path computes
        table = modules[0].od(to_model_input(values.contiguous()))[0, 0, 0].tolist()
    prefold = len(modules) > 1 and type(modules[1]) is DCT2d and image_size % 2 == 0
    order = fold_order(image_size).tolist() if prefold else None
    return {"table": table, "rows": order, "cols": order}, prefold


def _export(wrapper, example, input_name: str, outputs: list[str], path: Path) -> None:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in layers become constants: intended
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is chosen deliberately (module docstring)
        torch.onnx.export(wrapper, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[input_name], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in [input_name, *outputs]})


def export_onnx(model, model_input, image_size: int, path: Path | str, pixels: bool = True) -> str:
    """Export ``model`` (eval mode, weights loaded) with its ``model_input`` to ``path``.

    Args:
        model: timm-style model returning logits.
        model_input: callable turning a uint8 B x H x W x 3 tensor into the model's input
            (:class:`blastscope.engine.inputs.ModelInput`); traced into the graph when it can be.
        image_size: side H = W of the images the model is fed.
        pixels: export the ``optical_density`` graph where the model allows it (module
            docstring); False gives the plain ``images`` graph (the benchmark compares both).

    Returns the graph's input name: ``"optical_density"`` (table in NumPy, then the whole model),
    ``"images"`` (whole pipeline) or ``"inputs"`` (network alone).
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
    modules = _pixel_front(model, model_input) if pixels else None
    if modules is not None:
        meta, prefold = _pixel_metadata(modules, image_size)
        od = torch.zeros(2, 3, image_size, image_size)
        try:
            _export(_wrapper(model, _od_features(model, modules, prefold), spectral), od, "optical_density", outputs, path)
            _set_metadata(path, {PIXELS_KEY: json.dumps(meta)})
            _check_parity(model, model_input, path, image_size)
            return "optical_density"
        except Exception as e:  # noqa: BLE001 - fall back to the plain graph below, which must succeed
            logger.warning("the optical-density graph of %s did not export (%s); exporting the plain graph",
                           type(model).__name__, str(e).splitlines()[0][:200])
    try:
        _export(_wrapper(model, _rgb_features(model, model_input), spectral), example, "images", outputs, path)
        _check_parity(model, model_input, path, image_size)
        return "images"
    except Exception as e:  # the exporter raises many types; the message is what matters
        if isinstance(model_input, RGBInput):
            raise ValueError(f"ONNX export of {type(model).__name__} failed: {e}") from e
        logger.warning("model input %s does not export to ONNX (%s); exporting the network alone, the ONNX "
                       "path runs the input step in PyTorch", type(model_input).__name__, str(e).splitlines()[0][:200])
    try:
        _export(_wrapper(model, _rgb_features(model, None), spectral), features.contiguous(), "inputs", outputs, path)
        _check_parity(model, model_input, path, image_size)
    except Exception as e:
        raise ValueError(f"ONNX export of {type(model).__name__} failed: {e}") from e
    return "inputs"


def _set_metadata(path: Path, entries: dict[str, str]) -> None:
    import onnx

    graph = onnx.load(str(path))
    for key, value in entries.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


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


CHUNK = 2
"""Images per onnxruntime call when the sessions run side by side (1-4 measured on 2 cores: 1 and 2
best, 4 about 8% slower; the calls' fixed cost favours 2)."""


class OnnxModel:
    """An exported fold model run with onnxruntime on the CPU.

    ``__call__(images)``: uint8 B x H x W x 3 -> (log-probabilities B x K float32, spectral
    features B x P float32 or None). A network-only graph (input ``inputs``) needs the fold's
    ``model_input`` (run in PyTorch before the graph); an ``optical_density`` graph gets its
    input from the table and pixel order in its metadata, in NumPy.

    Threads: with N threads (``--threads``, default one per physical core) the model holds N
    single-threaded sessions and runs chunks of :data:`CHUNK` images on them side by side,
    instead of one session splitting every operator over N threads: most of this graph's
    operators are short element-wise passes whose per-operator thread hand-off costs more than
    it gains (measured in ``blastscope bench``, case ``inference_onnx``). ``side_by_side=False``
    gives the other arrangement, one session with N intra-op threads, for that comparison.
    """

    def __init__(self, path: Path | str, num_classes: int | None = None, model_input: Callable | None = None,
                 threads: int | None = None, side_by_side: bool = True) -> None:
        import onnxruntime as ort

        from blastscope.engine.threads import worker_threads
        from blastscope.inference.manifest import BundleError

        self.path = Path(path)
        self.workers = max(1, int(threads or worker_threads()))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: spinning threads would hold the cores that
        # PyTorch, NumPy's BLAS and OpenCV need between calls (a 1.5x slowdown measured on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.intra_op_num_threads = 1 if side_by_side else self.workers
        try:
            self.sessions = [ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
                             for _ in range(self.workers if side_by_side else 1)]
        except Exception as e:
            raise BundleError(f"{self.path}: not a loadable ONNX model ({e})") from None
        self.session = self.sessions[0]
        self._pool = None
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for session in self.sessions:
            self._free.put(session)
        inputs = [i.name for i in self.session.get_inputs()]
        names = [o.name for o in self.session.get_outputs()]
        if inputs not in (["images"], ["inputs"], ["optical_density"]) or not names or names[0] != "log_probs":
            raise BundleError(f"{self.path}: unexpected graph signature (inputs {inputs}, outputs {names})")
        self.input_name = inputs[0]
        if self.input_name == "inputs" and model_input is None:
            raise BundleError(f"{self.path}: a network-only graph needs the fold's model input")
        self.model_input = model_input
        if self.input_name == "optical_density":
            self._table, self._rows, self._cols = self._pixels()
        self.has_spectral = "spectral" in names
        out_shapes = {o.name: o.shape for o in self.session.get_outputs()}
        k = out_shapes["log_probs"][1]
        if num_classes is not None and isinstance(k, int) and k != num_classes:
            raise BundleError(f"{self.path}: gives {k} classes, the bundle names {num_classes}")
        p = out_shapes.get("spectral", [None, None])[1]
        self.n_spectral = p if isinstance(p, int) else -1

    def _pixels(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        from blastscope.inference.manifest import BundleError

        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            pixels = json.loads(meta[PIXELS_KEY])
            table = np.asarray(pixels["table"], dtype=np.float32)
            rows, cols = (None if pixels[k] is None else np.asarray(pixels[k], dtype=np.intp) for k in ("rows", "cols"))
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{self.path}: an optical_density graph without a valid {PIXELS_KEY!r} entry ({e})") from None
        if table.shape != (256,) or not np.isfinite(table).all():
            raise BundleError(f"{self.path}: {PIXELS_KEY!r} must hold 256 finite optical densities")
        for name, order in (("rows", rows), ("cols", cols)):
            if order is not None and (order.ndim != 1 or not np.array_equal(np.sort(order), np.arange(len(order)))):
                raise BundleError(f"{self.path}: {PIXELS_KEY!r} {name} is not a permutation")
        return table, rows, cols

    def optical_density(self, images: np.ndarray) -> np.ndarray:
        """uint8 B x H x W x 3 -> float32 B x 3 x H x W optical densities, pixels in the graph's order."""
        x = images
        for axis, order in ((1, self._rows), (2, self._cols)):
            if order is not None:
                if x.shape[axis] != len(order):
                    raise ValueError(f"{self.path}: the graph was exported for {len(order)} px images, got "
                                     f"{x.shape[1]}x{x.shape[2]}")
                x = x.take(order, axis=axis)
        return np.ascontiguousarray(self._table.take(x.transpose(0, 3, 1, 2)))

    def feed(self, images: np.ndarray) -> np.ndarray:
        """The graph's input for uint8 B x H x W x 3 images (what int8 calibration reads)."""
        x = np.ascontiguousarray(images, dtype=np.uint8)
        if self.input_name == "inputs":
            import torch

            with torch.inference_mode():
                return np.ascontiguousarray(self.model_input(torch.from_numpy(x)).numpy(), dtype=np.float32)
        if self.input_name == "optical_density":
            return self.optical_density(x)
        return x

    def _run(self, session, x: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {self.input_name: self.feed(x)})

    def _run_free(self, x: np.ndarray) -> list[np.ndarray]:
        session = self._free.get()  # a session no other thread is running
        try:
            return self._run(session, x)
        finally:
            self._free.put(session)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(images, dtype=np.uint8)
        if len(self.sessions) == 1 or len(x) <= CHUNK:
            outs = [self._run(self.session, x)]
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx")
            outs = list(self._pool.map(self._run_free, (x[i:i + CHUNK] for i in range(0, len(x), CHUNK))))
        logp = np.concatenate([o[0] for o in outs])
        return logp, (np.concatenate([o[1] for o in outs]) if self.has_spectral else None)
