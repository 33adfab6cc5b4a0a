"""Estimate of the full C-NMC protocol of Gehlot et al. 2020 from the measured rates.

12,528 training cells (8,491 ALL, 4,037 normal) in 7 subject-level folds, 130 epochs, batch 64,
the minority class oversampled to the majority in each fold's training part (section 4.3), and
the fold's validation cells predicted after every epoch. CPU time = training images / measured
training rate + validation images / measured inference rate (data waiting, checkpoints and the
SVM are not included). GPU time = counted FLOPs (matrix-form DCT, as a GPU would run it) at a
stated sustained rate, and, where the ``gpu`` group measured a GPU in the same run, the same
images at its measured mixed-precision training and float32 prediction rates.
"""
from __future__ import annotations

from blastscope.bench.config import BenchConfig
from blastscope.bench.flops import FlopCount
from blastscope.bench.result import CaseResult

__all__ = ["protocol_images", "run_protocol"]


def protocol_images(cfg: BenchConfig, batch: int) -> tuple[int, int]:
    """(training images, validation images) over all folds and epochs."""
    k = cfg.protocol_folds
    majority_train = cfg.protocol_majority * (k - 1) // k
    steps = (2 * majority_train) // batch  # both classes at the majority count, drop_last
    return k * cfg.protocol_epochs * steps * batch, cfg.protocol_epochs * cfg.protocol_cells


def run_protocol(cfg: BenchConfig, train_rate: float, ref_train_rate: float, infer_rate: float | None,
                 ref_infer_rate: float | None, flops: FlopCount, batch: int, gpu=None) -> list[CaseResult]:
    """The estimates; ``gpu``: :class:`blastscope.bench.gpu.GpuFigures` measured in this run, or None."""
    train_imgs, val_imgs = protocol_images(cfg, batch)

    def hours(t_rate: float, i_rate: float | None) -> float:
        return (train_imgs / t_rate + (val_imgs / i_rate if i_rate else 0.0)) / 3600.0

    gpu_flop = train_imgs * flops.train_total() + val_imgs * flops.forward_total()
    gpu_hours = gpu_flop / (cfg.gpu_tflops * 1e12) / 3600.0
    desc = (f"{cfg.protocol_cells:,} cells, {cfg.protocol_folds} folds x {cfg.protocol_epochs} epochs: "
            f"{train_imgs / 1e6:.1f} M training images, {val_imgs / 1e6:.2f} M validation predictions")
    measured = [] if gpu is None else [CaseResult(
        "protocol_gpu_measured", f"Full C-NMC protocol on this {gpu.name} (estimate from its measured step)", "hours",
        hours(gpu.train_rate, gpu.infer_rate), hours(train_rate, infer_rate), higher_is_better=False,
        notes=f"{desc}; reference: this machine's CPU; data loading not included (see gpu_data_wait)",
        extra={"training_images": train_imgs, "validation_images": val_imgs, "train_img_s": gpu.train_rate,
               "infer_img_s": gpu.infer_rate, "device": gpu.name})]
    return measured + [
        CaseResult("protocol_cpu", "Full C-NMC protocol on this machine (estimate)", "hours",
                   hours(train_rate, infer_rate), hours(ref_train_rate, ref_infer_rate), higher_is_better=False,
                   notes=desc, extra={"training_images": train_imgs, "validation_images": val_imgs}),
        CaseResult("protocol_gpu", f"Full C-NMC protocol on one GPU at {cfg.gpu_tflops:g} TFLOP/s sustained (estimate)",
                   "hours", gpu_hours, None, higher_is_better=False,
                   notes=f"{gpu_flop / 1e15:.1f} PFLOP counted (matrix DCT); assumes {cfg.gpu_tflops:g} TFLOP/s "
                         "float32 sustained (about half an A100's 19.5 TFLOP/s peak: 16-64 channel convolutions "
                         "do not reach peak); data loading not included",
                   extra={"pflop": gpu_flop / 1e15, "gpu_tflops": cfg.gpu_tflops}),
    ]
