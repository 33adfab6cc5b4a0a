"""Static int8 quantization of exported fold graphs for onnxruntime, accepted only where accuracy holds.

``quantize_graph`` writes a QDQ graph (onnxruntime's static quantization: per-channel int8
weights, uint8 activations, the convolutions only; the stain mixing, DCT products and log stay
float32, as the DCT sums 350 coefficients whose precision int8 cannot keep) calibrated on
training cells. ``int8_checks`` compares it with the float32 graph on held-out cells: it is
accepted only where the labels agree on >= 99.5% of the cells and the AUC differs by <= 0.005
(issue 19's rule), and the speed of both is measured in the same run.

Measured on the 2-core AMD EPYC of the README (``blastscope bench``, case ``onnx_int8``): the
int8 graph is slower than float32 there, because onnxruntime's float convolutions run in its
blocked NCHWc layout while the quantized ones add quantize/dequantize passes; the checks say so
rather than assume a speed-up.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

__all__ = ["INT8_AGREEMENT", "INT8_AUC_DIFF", "int8_checks", "quantize_graph"]

INT8_AGREEMENT = 0.995
INT8_AUC_DIFF = 0.005


def quantize_graph(fp32: Path | str, out: Path | str, calibration: np.ndarray, batch: int = 8) -> None:
    """Quantize the graph ``fp32`` into ``out``, calibrated on ``calibration`` (uint8 N x S x S x 3 cells)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from blastscope.inference.onnx_export import OnnxModel

    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one cell")
    model = OnnxModel(fp32, threads=1)
    feeds = [{model.input_name: model.feed(calibration[i:i + batch])} for i in range(0, len(calibration), batch)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint on the root logger
    try:
        quantize_static(str(fp32), str(out), _Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"], per_channel=True)
    finally:
        root.setLevel(level)
    _copy_metadata(Path(fp32), Path(out))


def _copy_metadata(src: Path, dst: Path) -> None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    graph = onnx.load(str(dst))
    have = {p.key for p in graph.metadata_props}
    for key, value in meta.items():
        if key not in have:
            graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(dst))


def int8_checks(fp32, int8, images: np.ndarray, y: np.ndarray, positive: int | list[int], batch: int = 64) -> dict:
    """Labels and AUC of the int8 graph against float32 on held-out ``images`` (labels ``y``, 1 = positive).

    ``positive``: the positive class's column, or the columns of several positive classes (the
    AUC then scores their summed probability).

    ``fp32``/``int8``: :class:`~blastscope.inference.onnx_export.OnnxModel`. Returns agreement, AUC
    difference (None when ``y`` has one class), both speeds (img/s, interleaved, best of 3) and
    ``accepted``.
    """
    from sklearn.metrics import roc_auc_score

    def run(model) -> np.ndarray:
        return np.concatenate([model(images[i:i + batch])[0] for i in range(0, len(images), batch)])

    out = {"fp32": run(fp32), "int8": run(int8)}
    seconds = {"fp32": [], "int8": []}
    for _ in range(3):
        for key, model in (("fp32", fp32), ("int8", int8)):
            t0 = time.perf_counter()
            run(model)
            seconds[key].append(time.perf_counter() - t0)
    agreement = float((out["fp32"].argmax(1) == out["int8"].argmax(1)).mean())
    y = np.asarray(y).astype(int)
    both = len(set(y.tolist())) == 2
    columns = [positive] if isinstance(positive, int) else list(positive)

    def score(logp: np.ndarray) -> np.ndarray:
        return np.exp(logp[:, columns]).sum(axis=1)

    auc_diff = abs(roc_auc_score(y, score(out["fp32"])) - roc_auc_score(y, score(out["int8"]))) if both else None
    rate = {key: len(images) / min(t) for key, t in seconds.items()}
    accepted = agreement >= INT8_AGREEMENT and (auc_diff is None or auc_diff <= INT8_AUC_DIFF)
    return {"cells": int(len(images)), "label_agreement": agreement, "auc_diff": auc_diff,
            "max_abs_logp_diff": float(np.abs(out["fp32"] - out["int8"]).max()),
            "fp32_img_s": rate["fp32"], "int8_img_s": rate["int8"], "speedup": rate["int8"] / rate["fp32"],
            "accepted": bool(accepted)}
