"""The training loop: seeded, resumable at epoch boundaries, best checkpoint by validation accuracy.

Gehlot et al. 2020 section 4.1/4.3 and the released code: SGD (lr 1e-3, momentum 0.9, weight
decay 1e-2), batch 64, step decay, NLL of log-softmax (here ``cross_entropy`` on logits, the same
loss), best checkpoint by validation accuracy. The optimiser and schedule are configurable so the
other papers' recipes (Adam + ReduceLROnPlateau on validation loss) use the same loop.

Resuming: after every epoch the full state (weights, optimiser, scheduler, torch RNG, history) is
committed atomically; the data order and augmentation draw from (seed, epoch, position), so a run
killed at any moment and resumed produces the same weights as an uninterrupted one.
"""
from __future__ import annotations

import logging
import math
import time
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
from blastscope.engine.checkpoint import load_state, load_weights, save_state, save_weights
from blastscope.engine.inference import predict_arrays
from blastscope.engine.progress import ProgressFactory, no_progress
from blastscope.engine.sampling import AugmentedImages
from blastscope.engine.tensors import to_model_input

__all__ = ["FitResult", "fit", "build_optimizer", "build_scheduler", "seed_everything"]

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
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=s.factor, patience=s.patience, min_lr=s.min_lr)
    return None


def _scheduler_state(scheduler) -> dict | None:
    if scheduler is None:
        return None
    # MultiStepLR keeps its milestones in a Counter whose int keys JSON would turn into strings;
    # they come from the config anyway, so only the counters that change are saved.
    return {k: v for k, v in scheduler.state_dict().items() if k != "milestones"}


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
    weights are loaded and nothing is retrained.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    done = workdir / "fit.json"
    if done.exists():
        import json

        meta = json.loads(done.read_text())
        load_weights(model, workdir / "best.safetensors")
        return FitResult(meta["best_epoch"], meta["best_val_accuracy"], meta["history"], meta["seconds"])
    seed_everything(cfg.seed)
    model = model.to(memory_format=torch.channels_last)
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
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                            drop_last=len(dataset) > cfg.batch_size)
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        n_batches = len(loader) if cfg.max_train_batches is None else min(len(loader), cfg.max_train_batches)
        with progress(total=n_batches, desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", leave=False) as bar:
            for b, (x, y) in enumerate(loader):
                if b >= n_batches:
                    break
                x = input_fn(x)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                bar.update(1)
                bar.set_postfix_str(f"loss {loss_sum / seen:.3f}")
        val_logp, _ = predict_arrays(model, val_images, cfg.eval_batch_size, input_fn=input_fn)
        val_labels_arr = np.asarray(val_labels)
        val_loss = float(-val_logp[np.arange(len(val_labels_arr)), val_labels_arr].mean()) if len(val_labels_arr) else float("nan")
        val_acc = float((val_logp.argmax(1) == val_labels_arr).mean()) if len(val_labels_arr) else float("nan")
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step(val_loss) if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) else scheduler.step()
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                        "val_loss": val_loss, "val_accuracy": val_acc})
        if val_acc > best["val_accuracy"]:
            best = {"epoch": epoch + 1, "val_accuracy": val_acc}
            save_weights(model, workdir / "best.safetensors")
        _write_history(workdir / "history.csv", history)
        save_state(workdir, epoch, model, optimizer, {"history": history, "best": best, "seconds": seconds,
                                                       "scheduler": _scheduler_state(scheduler)})
        logger.info("%s epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f", desc, epoch + 1,
                    history[-1]["train_loss"], history[-1]["train_accuracy"], val_loss, val_acc)
    load_weights(model, workdir / "best.safetensors")
    atomic_write_json(done, {"best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"], "history": history, "seconds": seconds})
    for old in workdir.glob("state-*.safetensors"):
        old.unlink(missing_ok=True)
    (workdir / "state.json").unlink(missing_ok=True)
    return FitResult(best["epoch"], best["val_accuracy"], history, seconds)
