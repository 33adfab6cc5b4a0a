"""Training-step cases: SDCT-Net step (optimised vs reference), roofline fraction, DCT share.

The optimised step is the trainer's (:func:`blastscope.engine.trainer.train_step` on the
channels-last model and input, denormals flushed); the reference is :mod:`.reference` on NCHW
tensors. Both start from the same weights and batch; after one step their logits, loss and
updated weights are compared (the tolerances are stated in the result).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from blastscope.bench.config import BenchConfig
from blastscope.bench.flops import FlopCount, count_flops
from blastscope.bench.reference import reference_from
from blastscope.bench.result import CaseResult
from blastscope.bench.timing import Timing, time_call

__all__ = ["TrainingFigures", "run_training"]

# One SGD step from identical weights. Float32 gradients of both paths differ from a float64
# computation by ~5e-6 in the first layers (measured: the same for both paths), so after a step
# with lr 1e-3 the weights agree to ~1e-8. BatchNorm running statistics differ more: PyTorch's CPU
# BatchNorm accumulates the batch statistics of channels-last tensors in float32 (relative error
# of the batch variance up to ~5e-4 at 2 M values per channel, measured against float64; the NCHW
# kernel accumulates in float64, ~2e-7), so they agree to ~3e-4 relative after one step.
LOGIT_RTOL = 1e-3
WEIGHT_ATOL = 1e-6
BUFFER_RTOL = 1e-3


@dataclass
class TrainingFigures:
    """What later cases reuse: step times, FLOPs and the model."""

    step: Timing
    reference_step: Timing
    flops: FlopCount
    batch_size: int


def _sgd(params) -> torch.optim.Optimizer:
    # Gehlot et al. 2020 / released code: SGD lr 1e-3, momentum 0.9, weight decay 1e-2
    return torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-2)


def _reference_input(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0).contiguous()


def _reference_step(model, x: torch.Tensor, y: torch.Tensor, optimizer) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def _agreement(model, ref, logits_o, logits_r, loss_o, loss_r) -> dict:
    ref_state = ref.state_dict()
    params = {name for name, _ in model.named_parameters()}
    weight_diff = buffer_diff = 0.0
    for k, v in model.state_dict().items():
        if not v.is_floating_point():
            continue
        diff = float((v.float() - ref_state[k].float()).abs().max())
        if k in params:
            weight_diff = max(weight_diff, diff)
        else:
            buffer_diff = max(buffer_diff, diff / max(1.0, float(ref_state[k].abs().max())))
    scale = max(1.0, float(logits_r.abs().max()))
    logit_diff = float((logits_o - logits_r).abs().max())
    ok = logit_diff <= LOGIT_RTOL * scale and weight_diff <= WEIGHT_ATOL and buffer_diff <= BUFFER_RTOL
    return {"max_abs_logit_diff": logit_diff, "logit_tolerance": LOGIT_RTOL * scale,
            "loss_optimised": float(loss_o), "loss_reference": float(loss_r),
            "max_abs_weight_diff_after_step": weight_diff, "weight_tolerance": WEIGHT_ATOL,
            "max_rel_running_stat_diff": buffer_diff, "running_stat_tolerance": BUFFER_RTOL, "ok": ok}


def _dct_time(layer, z: torch.Tensor, repeats: int) -> Timing:
    z = z.detach().requires_grad_()
    grad = torch.ones_like(layer(z))

    def run() -> None:
        z.grad = None
        layer(z).backward(grad)

    return time_call(run, repeats=repeats, warmup=1)


def run_training(cfg: BenchConfig, batch: np.ndarray, sgemm: float) -> tuple[list[CaseResult], TrainingFigures]:
    """Cases ``train_step``, ``train_roofline`` and ``dct_share`` on one uint8 batch (B x S x S x 3)."""
    from blastscope.engine.tensors import flush_denormal, to_model_input
    from blastscope.engine.trainer import train_step
    from blastscope.models import create_model

    size, b = cfg.image_size, len(batch)
    torch.manual_seed(0)
    model = create_model("sdct_net")
    flops = count_flops(model, (3, size, size))
    ref = reference_from(model, size)
    model = model.to(memory_format=torch.channels_last)
    y = torch.arange(b) % 2
    opt_o, opt_r = _sgd(model.parameters()), _sgd(ref.parameters())
    raw = torch.from_numpy(batch)

    with flush_denormal():
        def optimised_step():
            return train_step(model, to_model_input(raw), y, opt_o)

        loss_o, logits_o = optimised_step()
    loss_r, logits_r = _reference_step(ref, _reference_input(batch), y, opt_r)
    agreement = _agreement(model, ref, logits_o, logits_r, loss_o, loss_r)

    with flush_denormal():
        step = time_call(optimised_step, repeats=cfg.train_repeats, warmup=0)
    ref_step = time_call(lambda: _reference_step(ref, _reference_input(batch), y, opt_r), repeats=cfg.train_repeats, warmup=0)

    rate, ref_rate = b / step.median, b / ref_step.median
    cases = [CaseResult(
        "train_step", f"SDCT-Net training step (batch {b}, {size}x{size}, fwd+bwd+SGD)", "img/s", rate, ref_rate,
        target=">= 2x reference", met=rate / ref_rate >= 2.0, agreement=agreement,
        notes="optimised: channels-last, FFT DCT, fused stain/log layers, in-place ReLU, FTZ; reference: NCHW, "
              "matrix DCT, plain layers",
        extra={"optimised_step_s": step.to_dict(), "reference_step_s": ref_step.to_dict()})]

    per_step = flops.train_total() * b
    per_step_cnn = flops.train_total(exclude=("dct", "stain")) * b
    dct_flops = flops.train_total() - flops.train_total(exclude=("dct",))
    per_step_half_dct = (flops.train_total() - dct_flops / 2) * b  # the DCT at its even/odd matrix cost
    frac, ref_frac = per_step / step.median / 1e9 / sgemm, per_step / ref_step.median / 1e9 / sgemm
    cases.append(CaseResult(
        "train_roofline", "Training step as a fraction of the sgemm roofline", "fraction", frac, ref_frac,
        target=">= 0.45", met=frac >= 0.45,
        notes=f"{per_step / 1e9:.1f} GFLOP per step (the DCT counted as the released code computes it, two dense "
              f"matrix products) / step time / sgemm {sgemm:.1f} GFLOP/s; with the DCT at its even/odd matrix cost: "
              f"{per_step_half_dct / step.median / 1e9 / sgemm:.2f}; the convolution, pooling and linear layers alone: "
              f"{per_step_cnn / step.median / 1e9 / sgemm:.2f} (reference {per_step_cnn / ref_step.median / 1e9 / sgemm:.2f})",
        extra={"gflop_per_step": per_step / 1e9, "gflop_per_step_cnn_only": per_step_cnn / 1e9,
               "achieved_gflops": per_step / step.median / 1e9,
               "reference_achieved_gflops": per_step / ref_step.median / 1e9,
               "fraction_cnn_only": per_step_cnn / step.median / 1e9 / sgemm,
               "fraction_dct_even_odd": per_step_half_dct / step.median / 1e9 / sgemm,
               "reference_fraction_cnn_only": per_step_cnn / ref_step.median / 1e9 / sgemm,
               "sgemm_gflops": sgemm, "flops_per_image": flops.to_dict()}))

    with torch.no_grad(), flush_denormal():
        z = model.front[0](to_model_input(raw))
    dct = _dct_time(model.front[1], z, cfg.train_repeats)
    ref_dct = _dct_time(ref.front[1], z.contiguous(), cfg.train_repeats)
    share, ref_share = dct.median / step.median, ref_dct.median / ref_step.median
    cases.append(CaseResult(
        "dct_share", "DCT forward + backward as a share of the training step", "share", share, ref_share,
        higher_is_better=False, target="<= 0.15", met=share <= 0.15,
        notes=f"DCT fwd+bwd {dct.median * 1e3:.0f} ms (FFT) vs {ref_dct.median * 1e3:.0f} ms (matrix)",
        extra={"dct_s": dct.to_dict(), "reference_dct_s": ref_dct.to_dict()}))
    return cases, TrainingFigures(step, ref_step, flops, b)
