"""The training loop: seeded, resumable at epoch boundaries, best checkpoint by validation accuracy.

Gehlot et al. 2020 section 4.1/4.3 and the released code: SGD (lr 1e-3, momentum 0.9, weight
decay 1e-2), batch 64, step decay, NLL of log-softmax (here ``cross_entropy`` on logits, the same
loss), best checkpoint by validation accuracy. The optimiser and schedule are configurable so the
other papers' recipes (Adam + ReduceLROnPlateau on the validation loss or, with
``schedule.monitor: val_accuracy``, the validation accuracy) use the same loop. "Validation" is
the set that chooses the best epoch: the inner selection subjects by default.

Resuming: after every epoch the full state (weights, optimiser, scheduler, torch RNG, history) is
committed atomically; the data order and augmentation draw from (seed, epoch, position), so a run
killed at any moment and resumed produces the same weights as an uninterrupted one.

Data-parallel: inside an initialised process group (:mod:`blastscope.engine.distributed`) each
process takes its share of every global batch of ``cfg.batch_size``, BatchNorm statistics and
gradients cover the global batch, validation is split across processes, and only rank 0 writes
files; the result equals one process with the same global batch up to float rounding.
Denormal floats are flushed to zero during ``fit`` (see :func:`blastscope.engine.tensors.flush_denormal`).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from blastscope.config import TrainConfig
from blastscope.engine.atomic import atomic_write_json, atomic_write_text
from blastscope.engine import distributed as ddp
from blastscope.engine.checkpoint import load_state, load_weights, save_state, save_weights
from blastscope.engine.inference import predict_arrays
from blastscope.engine.progress import ProgressFactory, no_progress
from blastscope.engine.sampling import AugmentedImages
from blastscope.engine.tensors import flush_denormal, to_model_input

__all__ = ["FitResult", "fit", "train_step", "build_optimizer", "build_scheduler", "seed_everything"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, Any]]
    seconds: float


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    s = cfg.schedule
    if s.name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(s.milestones), gamma=s.gamma)
    if s.name == "plateau":
        mode = "max" if s.monitor == "val_accuracy" else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=s.factor, patience=s.patience, min_lr=s.min_lr)
    return None


def _scheduler_state(scheduler) -> dict | None:
    if scheduler is None:
        return None
    # MultiStepLR keeps its milestones in a Counter whose int keys JSON would turn into strings;
    # they come from the config anyway, so only the counters that change are saved.
    return {k: v for k, v in scheduler.state_dict().items() if k != "milestones"}


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               loss_scale: float | None = None, amp=None, scaler=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch; returns (detached loss, detached logits B x K).

    ``loss_scale=None``: mean cross-entropy over the batch. Otherwise the summed cross-entropy
    times ``loss_scale`` (data-parallel: ``world_size / global_batch``, so that DDP's gradient
    average is the gradient of the global-batch mean).
    """
    with amp if amp is not None else contextlib.nullcontext():  # mixed precision (engine.device.autocast)
        logits = model(x)
        if loss_scale is None:
            loss = F.cross_entropy(logits.float(), y)
        else:
            loss = F.cross_entropy(logits.float(), y, reduction="sum") * loss_scale
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:  # fp16 on CUDA: scaled backward, unscaled step
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), logits.detach().float()


def loader_workers(setting: int | str, device: torch.device, world: int = 1) -> int:
    """DataLoader worker processes for ``train.num_workers``: a number as given; ``auto`` is none on
    the CPU (its cores train the model; workers would take them) and, on a GPU, one per core this
    process may use but one, at most 8 (the GPU waits for CPU augmentation otherwise; bench case
    ``gpu_data_wait``), where workers fork (elsewhere none). The results do not depend on it: every sample's augmentation is seeded by
    its epoch position (tested)."""
    if setting != "auto":
        return int(setting)
    import multiprocessing

    if device.type != "cuda" or multiprocessing.get_start_method(allow_none=True) not in (None, "fork") \
            or multiprocessing.get_context().get_start_method() != "fork":
        return 0  # spawned workers would copy the training images each epoch (the loader is made per epoch)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(0, min(8, cores // max(world, 1) - 1))


def _validate(model: nn.Module, images: np.ndarray, batch_size: int, input_fn) -> np.ndarray:
    """Log-probabilities of the validation images, split across processes when data-parallel."""
    if not ddp.is_distributed():
        return predict_arrays(model, images, batch_size, input_fn=input_fn)[0]
    part, _ = predict_arrays(model, images[ddp.rank()::ddp.world_size()], batch_size, input_fn=input_fn)
    return ddp.gather_strided(part, len(images))


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]:.6g}" if isinstance(h[k], float) else str(h[k]) for k in keys) for h in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


def fit(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    cfg: TrainConfig,
    workdir: Path,
    transform=None,
    balance: str = "oversample",
    augment_mask: np.ndarray | None = None,
    progress: ProgressFactory = no_progress,
    desc: str = "train",
    input_fn: Callable[[torch.Tensor], torch.Tensor] = to_model_input,
) -> FitResult:
    """Train ``model`` in place; on return it holds the best weights (by validation accuracy).

    ``workdir`` receives ``state.json``/``state-*.safetensors`` (resume), ``best.safetensors``,
    ``history.csv`` and ``fit.json``. An existing ``fit.json`` means the fit is complete: the best
    weights are loaded and nothing is retrained. Data-parallel (see the module docstring): call
    it in every process of the group with the same arguments; only rank 0 writes.
    """
    with flush_denormal(), ExitStack() as stack:
        return _fit(model, train_images, train_labels, val_images, val_labels, cfg, Path(workdir), transform,
                    balance, augment_mask, progress, desc, input_fn, stack)


def _fit(model, train_images, train_labels, val_images, val_labels, cfg: TrainConfig, workdir: Path, transform,
         balance, augment_mask, progress: ProgressFactory, desc: str, input_fn, stack: ExitStack) -> FitResult:
    main = ddp.is_main_process()
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        progress = no_progress
    done = workdir / "fit.json"
    if done.exists():
        import json

        meta = json.loads(done.read_text())
        load_weights(model, workdir / "best.safetensors")
        return FitResult(meta["best_epoch"], meta["best_val_accuracy"], meta["history"], meta["seconds"])
    seed_everything(cfg.seed)
    from blastscope.engine.device import amp_dtype, autocast, grad_scaler, resolve_device

    device = ddp.rank_device(resolve_device(cfg.device))  # data-parallel on GPUs: this rank's own GPU
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # autotuned convolutions for the fixed cell size
    dtype = amp_dtype(device, cfg.amp)
    scaler = grad_scaler(device, dtype)
    model = model.to(device=device, memory_format=torch.channels_last)
    if hasattr(input_fn, "to") and device.type != "cpu":
        input_fn.to(device)  # a fitted model input (a module) follows the model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    state = load_state(workdir, model, optimizer)
    history: list[dict[str, Any]] = state["history"] if state else []
    best = state["best"] if state else {"epoch": -1, "val_accuracy": -math.inf}
    start_epoch = state["epoch"] + 1 if state else 0
    if state and scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict({**scheduler.state_dict(), **state["scheduler"]})
    if state:
        logger.info("%s: resuming at epoch %d", workdir, start_epoch + 1)
    dataset = AugmentedImages(train_images, train_labels, transform, cfg.seed, balance, augment_mask)
    seconds = state.get("seconds", 0.0) if state else 0.0
    distributed, world = ddp.is_distributed(), ddp.world_size()
    workers = loader_workers(cfg.num_workers, device, world)
    train_model = model
    if distributed:
        stack.enter_context(ddp.sync_batchnorm(model))
        train_model = ddp.wrap_model(model)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        dataset.set_epoch(epoch)
        batch_size, global_sizes = cfg.batch_size, None
        if distributed:
            dataset.positions, global_sizes = ddp.shard_positions(len(dataset.order), cfg.batch_size, ddp.rank(), world)
            batch_size = cfg.batch_size // world
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                            drop_last=not distributed and len(dataset) > cfg.batch_size, pin_memory=device.type == "cuda")
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        n_batches = len(loader) if cfg.max_train_batches is None else min(len(loader), cfg.max_train_batches)
        with progress(total=n_batches, desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", leave=False) as bar:
            for b, (x, y) in enumerate(loader):
                if b >= n_batches:
                    break
                scale = None if global_sizes is None else world / global_sizes[b]
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss, logits = train_step(train_model, input_fn(x), y, optimizer, scale, autocast(device, dtype), scaler)
                loss_sum += loss.item() * len(y) if scale is None else loss.item() / scale
                correct += int((logits.argmax(1) == y).sum().item())
                seen += len(y)
                bar.update(1)
                bar.set_postfix_str(f"loss {loss_sum / seen:.3f}")
        if distributed:
            loss_sum, correct, seen = ddp.all_reduce_sum([loss_sum, correct, seen])
            correct, seen = int(correct), int(seen)
        if not math.isfinite(loss_sum):
            raise ValueError(f"{desc}, epoch {epoch + 1}: the training loss is not finite ({loss_sum}); lower "
                             "train.optimizer.lr or check the data (the last finished epoch is kept for a resume)")
        val_logp = _validate(model, val_images, cfg.eval_batch_size, input_fn)
        val_labels_arr = np.asarray(val_labels)
        val_loss = float(-val_logp[np.arange(len(val_labels_arr)), val_labels_arr].mean()) if len(val_labels_arr) else float("nan")
        val_acc = float((val_logp.argmax(1) == val_labels_arr).mean()) if len(val_labels_arr) else float("nan")
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_acc if cfg.schedule.monitor == "val_accuracy" else val_loss)
            else:
                scheduler.step()
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                        "val_loss": val_loss, "val_accuracy": val_acc})
        if val_acc > best["val_accuracy"]:
            best = {"epoch": epoch + 1, "val_accuracy": val_acc}
            if main:
                save_weights(model, workdir / "best.safetensors")
        if main:
            _write_history(workdir / "history.csv", history)
            save_state(workdir, epoch, model, optimizer, {"history": history, "best": best, "seconds": seconds,
                                                           "scheduler": _scheduler_state(scheduler)})
        logger.info("%s epoch %d/%d: train loss %.4f acc %.3f, selection loss %.4f acc %.3f, %.1f s", desc, epoch + 1,
                    cfg.epochs, history[-1]["train_loss"], history[-1]["train_accuracy"], val_loss, val_acc,
                    time.perf_counter() - t0)
    ddp.barrier()  # rank 0's best.safetensors is complete before anyone reads it
    load_weights(model, workdir / "best.safetensors")
    ddp.barrier()  # everyone has read the state before rank 0 removes it
    if main:
        atomic_write_json(done, {"best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"], "history": history, "seconds": seconds})
        for old in workdir.glob("state-*.safetensors"):
            old.unlink(missing_ok=True)
        (workdir / "state.json").unlink(missing_ok=True)
    return FitResult(best["epoch"], best["val_accuracy"], history, seconds)
