"""Static int8 quantization of exported fold graphs for onnxruntime, accepted only where accuracy holds.

``quantize_graph`` writes a QDQ graph (onnxruntime's static quantization: per-channel int8
weights, uint8 activations, the convolutions only; the stain mixing, DCT products and log stay
float32, as the DCT sums 350 coefficients whose precision int8 cannot keep) calibrated on
training cells. ``int8_checks`` compares it with the float32 graph on held-out cells: it is
accepted only where the labels agree on >= 99.5% of the cells (the CNN's, and the fold's answers
after the theta rule with its SVM, which reads the int8 features) and the AUC differs by <= 0.005
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

__all__ = ["INT8_AGREEMENT", "INT8_AUC_DIFF", "fold_checks", "int8_checks", "quantize_graph"]

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


def fold_checks(bundle, k: int) -> tuple:
    """``(answer, flag)`` for :func:`int8_checks` of fold model ``k`` of ``bundle``: its answers (the
    theta rule with its SVM, :func:`~blastscope.inference.predictor.fold_answer`) and its
    out-of-domain flags (None without an out-of-domain check), as ``predict`` gives them."""
    from blastscope.inference.predictor import fold_answer

    theta_on = bundle.trust.get("theta_on", "raw")

    def answer(logp: np.ndarray, feats: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        _, labels, _, proba, _ = fold_answer(logp, feats, bundle.svms[k], bundle.fold_thetas[k],
                                             bundle.temperatures[k], theta_on)
        return labels, proba

    ood = bundle.oods[k] if bundle.oods else None
    return answer, (None if ood is None else (lambda feats: ood.flag(feats)[1]))


def int8_checks(fp32, int8, images: np.ndarray, y: np.ndarray, positive: int | list[int], batch: int = 64,
                answer=None, flag=None) -> dict:
    """Labels and AUC of the int8 model against float32 on held-out ``images`` (labels ``y``, 1 = positive).

    ``fp32``/``int8``: callables ``model(uint8 images) -> (log-probabilities, spectral features)``
    (:class:`~blastscope.inference.onnx_export.OnnxModel`,
    :class:`~blastscope.inference.torch_int8.TorchRunner`). ``positive``: the positive class's
    column, or the columns of several positive classes (the AUC then scores their summed probability).
    ``answer``: ``answer(log-probabilities, features) -> (labels, probabilities)``, what the fold
    model answers (:func:`~blastscope.inference.predictor.fold_answer`: the theta rule with its SVM,
    which reads the int8 model's features too); the answers must then agree as well, and the AUC
    scores the answered probability. ``flag``: ``flag(features) -> bool per cell``, the fold's
    out-of-domain check (thresholds fitted on float32 features), whose flags must agree as well.
    Returns the agreements, the AUC difference (None when ``y`` has one class), both speeds (img/s,
    interleaved, best of 3) and ``accepted``.
    """
    from sklearn.metrics import roc_auc_score

    def run(model) -> tuple[np.ndarray, np.ndarray | None]:
        parts = [model(images[i:i + batch]) for i in range(0, len(images), batch)]
        feats = [f for _, f in parts]
        return np.concatenate([lp for lp, _ in parts]), (np.concatenate(feats) if all(f is not None for f in feats) else None)

    out = {"fp32": run(fp32), "int8": run(int8)}
    seconds = {"fp32": [], "int8": []}
    for _ in range(3):
        for key, model in (("fp32", fp32), ("int8", int8)):
            t0 = time.perf_counter()
            run(model)
            seconds[key].append(time.perf_counter() - t0)
    logp = {key: lp for key, (lp, _) in out.items()}
    agreement = float((logp["fp32"].argmax(1) == logp["int8"].argmax(1)).mean())
    if answer is not None:
        answers = {key: answer(lp, f) for key, (lp, f) in out.items()}
        labels = {key: np.asarray(a[0]) for key, a in answers.items()}
        proba = {key: np.asarray(a[1]) for key, a in answers.items()}
        answer_agreement = float((labels["fp32"] == labels["int8"]).mean())
    else:
        proba = {key: np.exp(lp) for key, lp in logp.items()}
        answer_agreement = None
    flag_agreement = None if flag is None else float((np.asarray(flag(out["fp32"][1])) == np.asarray(flag(out["int8"][1]))).mean())
    y = np.asarray(y).astype(int)
    both = len(set(y.tolist())) == 2
    columns = [positive] if isinstance(positive, int) else list(positive)

    def score(p: np.ndarray) -> np.ndarray:
        return p[:, columns].sum(axis=1)

    auc_diff = abs(roc_auc_score(y, score(proba["fp32"])) - roc_auc_score(y, score(proba["int8"]))) if both else None
    rate = {key: len(images) / min(t) for key, t in seconds.items()}
    accepted = (agreement >= INT8_AGREEMENT and all(a is None or a >= INT8_AGREEMENT for a in (answer_agreement, flag_agreement))
                and (auc_diff is None or auc_diff <= INT8_AUC_DIFF))
    return {"cells": int(len(images)), "label_agreement": agreement, "answer_agreement": answer_agreement,
            "out_of_domain_agreement": flag_agreement,
            "auc_diff": auc_diff, "max_abs_logp_diff": float(np.abs(logp["fp32"] - logp["int8"]).max()),
            "fp32_img_s": rate["fp32"], "int8_img_s": rate["int8"], "speedup": rate["int8"] / rate["fp32"],
            "accepted": bool(accepted)}
