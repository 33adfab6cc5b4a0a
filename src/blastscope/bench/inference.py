"""SDCT-AuxNet-theta inference cases: batched vs a batch-1 loop, and eager PyTorch vs onnxruntime.

The pipeline is the paper's (Gehlot et al. 2020, section 3.4): SD + DCT + CNN, then the RBF SVM
on the spectral-averaged features of the cells whose top probability is <= theta. Optimised:
:func:`blastscope.engine.inference.predict_arrays` in batches and the SVM evaluated from its
exported arrays on all low-confidence cells at once. Reference: the authors' test script style,
one image at a time through :class:`.reference.ReferenceSDCTNet` and ``SVC.predict`` per cell.
The SVM is fitted on the model's own features with alternating labels (nearly every cell a
support vector, a pessimistic case for its cost); with an untrained model almost every cell is
low-confidence, so the SVM answers nearly all of them.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from blastscope.bench.config import BenchConfig
from blastscope.bench.reference import reference_from
from blastscope.bench.result import CaseResult
from blastscope.bench.timing import interleaved

__all__ = ["run_inference"]

LOGP_ATOL = 1e-4  # log-probabilities, float32, different summation orders
ONNX_LOGP_ATOL = 1e-4


def _optimised(model, svm, images: np.ndarray, batch: int, theta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from blastscope.engine.inference import predict_arrays

    logp, feats = predict_arrays(model, images, batch, spectral=True)
    pred = logp.argmax(1)
    low = np.exp(logp).max(1) <= theta
    if svm is not None and low.any():
        pred[low] = svm.predict(feats[low])
    return pred, logp, feats


def _reference(ref, svc, images: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    preds, logps = [], []
    with torch.no_grad():
        for image in images:
            x = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
            maps = ref.forward_features(x)
            logp = torch.log_softmax(ref.forward_head(maps), dim=1)[0]
            pred = int(logp.argmax())
            if float(logp.exp().max()) <= theta:
                pred = int(svc.predict(maps.mean(dim=1).flatten(1).double().numpy())[0])
            preds.append(pred)
            logps.append(logp.numpy())
    return np.array(preds), np.stack(logps)


def _bound(model, size: int, loop_rate: float, sgemm: float | None) -> tuple[str, dict]:
    """What 8x the batch-1 loop would need, in counted FLOPs per second against the sgemm rate.

    The FLOPs are the batched path's own (DCT by FFT is not counted: only the layers that must run
    as products, i.e. convolutions, bilinear pooling, the classifier and the stain mixing).
    """
    from blastscope.bench.flops import count_flops

    per_image = count_flops(model, (3, size, size)).forward_total(exclude=("dct",))
    needed = 8.0 * loop_rate * per_image / 1e9
    extra = {"gflop_per_image_without_dct": per_image / 1e9, "gflops_needed_for_8x": needed, "sgemm_gflops": sgemm}
    if not sgemm:
        return "", extra
    extra["fraction_of_sgemm_needed_for_8x"] = needed / sgemm
    return (f"; 8x the loop needs {8.0 * loop_rate:.0f} img/s = {needed:.0f} GFLOP/s of convolutions alone "
            f"({needed / sgemm:.2f} of sgemm, {per_image / 1e9:.2f} GFLOP/image without the DCT)"), extra


def run_inference(cfg: BenchConfig, images: np.ndarray, sgemm: float | None = None) -> list[CaseResult]:
    """Cases ``inference_batched`` and ``inference_onnx`` on uint8 N x S x S x 3 images."""
    from blastscope.estimators.svm_head import SpectralSVM
    from blastscope.models import create_model

    torch.manual_seed(0)
    model = create_model("sdct_net").eval()
    ref = reference_from(model, cfg.image_size).eval()
    _, logp, feats = _optimised(model, None, images, cfg.infer_batch, cfg.theta)
    fitted = SpectralSVM(C=10.0, gamma=100.0).fit(feats, np.arange(len(feats)) % 2)
    svm = SpectralSVM.from_arrays(fitted.to_arrays())  # what a saved run loads: NumPy RBF, batched

    loop = images[: cfg.loop_images]
    ref_pred, ref_logp = _reference(ref, fitted.svc_, loop, cfg.theta)  # also warms both paths
    opt_pred, opt_logp, _ = _optimised(model, svm, loop, cfg.infer_batch, cfg.theta)
    opt, ref_t = interleaved(lambda: _optimised(model, svm, images, cfg.infer_batch, cfg.theta),
                             lambda: _reference(ref, fitted.svc_, loop, cfg.theta), repeats=3)
    ref_seconds = ref_t.median
    logp_diff = float(np.abs(opt_logp - ref_logp).max())
    same = float((opt_pred == ref_pred).mean())
    low_share = float((np.exp(logp).max(1) <= cfg.theta).mean())
    rate, ref_rate = len(images) / opt.median, len(loop) / ref_seconds
    bound_note, bound = _bound(model, cfg.image_size, ref_rate, sgemm)
    cases = [CaseResult(
        "inference_batched", f"SDCT-AuxNet-theta inference, batched ({cfg.infer_batch}) vs batch-1 loop", "img/s",
        rate, ref_rate, target=">= 8x reference", met=rate / ref_rate >= 8.0,
        agreement={"max_abs_logp_diff": logp_diff, "tolerance": LOGP_ATOL, "same_prediction_share": same,
                   "ok": logp_diff <= LOGP_ATOL and same == 1.0},
        notes=f"SVM answered {low_share:.0%} of the cells (theta {cfg.theta}); reference loop over {len(loop)} images"
              + bound_note,
        extra={"optimised_s": opt.to_dict(), "reference_s": ref_t.to_dict(), "svm_support_vectors": len(fitted.svc_.support_),
               **bound})]
    cases.append(_onnx_case(cfg, model, images, rate) if cfg.onnx else
                 CaseResult.skip("inference_onnx", "onnxruntime vs eager PyTorch (batched)", "disabled"))
    return cases


def _onnx_case(cfg: BenchConfig, model, images: np.ndarray, eager_rate: float) -> CaseResult:
    """The graph ``blastscope export`` writes, run as ``predict --backend onnx`` runs it, against eager
    PyTorch; each lever measured in the same run (plain uint8 graph, side-by-side sessions, the
    optical-density graph with pre-folded pixels)."""
    title = f"SDCT-Net inference, onnxruntime vs eager PyTorch (batch {cfg.infer_batch})"
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return CaseResult.skip("inference_onnx", title, f"onnxruntime unavailable ({e})")
    from blastscope.engine.inference import predict_arrays
    from blastscope.engine.inputs import RGBInput
    from blastscope.inference.onnx_export import OnnxModel, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"images": Path(tmp) / "plain.onnx", "optical_density": Path(tmp) / "od.onnx"}
        try:
            for kind, path in paths.items():
                got = export_onnx(model, RGBInput(), cfg.image_size, path, pixels=kind == "optical_density")
                if got != kind:
                    raise ValueError(f"expected a {kind!r} graph, got {got!r}")
        except Exception as e:  # noqa: BLE001 - the exporter raises many types
            return CaseResult.skip("inference_onnx", title, f"export failed: {type(e).__name__}: {e}")
        levers = {"plain graph, one session (intra-op threads)": OnnxModel(paths["images"], side_by_side=False),
                  "plain graph, sessions side by side": OnnxModel(paths["images"]),
                  "optical-density graph, one session": OnnxModel(paths["optical_density"], side_by_side=False),
                  "optical-density graph, sessions side by side (shipped)": OnnxModel(paths["optical_density"])}
    shipped = list(levers.values())[-1]

    def runner(onnx_model):
        return lambda: np.concatenate([onnx_model(images[i:i + cfg.infer_batch])[0]
                                       for i in range(0, len(images), cfg.infer_batch)])

    def eager() -> None:
        predict_arrays(model, images, cfg.infer_batch, spectral=True)

    rates = {}
    for onnx_model in levers.values():
        runner(onnx_model)()  # warm
    for name, onnx_model in levers.items():
        ort_t, eager_t = interleaved(runner(onnx_model), eager, repeats=3)
        rates[name] = {"onnx_img_s": len(images) / ort_t.median, "eager_img_s": len(images) / eager_t.median,
                       "onnx_s": ort_t.to_dict(), "eager_s": eager_t.to_dict()}
    expected = predict_arrays(model, images, cfg.infer_batch)[0]
    diff = max(float(np.abs(runner(m)() - expected).max()) for m in levers.values())
    best = rates[list(levers)[-1]]
    rate, eager_rate = best["onnx_img_s"], best["eager_img_s"]
    lever_note = "; ".join(f"{name} {r['onnx_img_s'] / r['eager_img_s']:.2f}x" for name, r in rates.items())
    return CaseResult(
        "inference_onnx", title, "img/s", rate, eager_rate, target=">= 1x eager", met=rate >= eager_rate,
        agreement={"max_abs_logp_diff": diff, "tolerance": ONNX_LOGP_ATOL, "ok": diff <= ONNX_LOGP_ATOL},
        notes=f"CNN with features, no SVM (the same NumPy SVM follows either); the graph blastscope export writes, "
              f"{shipped.workers} single-threaded sessions on chunks of 2 images; each lever against eager in the "
              f"same run: {lever_note}. ONNX has no DCT operator: the graph computes it as matrix products (even/odd "
              f"split on pre-folded pixels), eager PyTorch by FFT",
        extra={"levers": rates})
