"""How fast SD-Net and SDCT-Net variants learn on real cells (issue 14, item 4).

Trial pair: the smear set's early_malignant vs pre_malignant images (never the benign vs
pro_malignant pair the cpu profile is scored on), image-level 75/25 split (seed 0), cells resized
to SIZE px, batch 32, SGD (momentum 0.9, weight decay 1e-4), horizontal flips; prints the
held-out accuracy after every epoch, one JSON line per variant.

    python scripts/dct_learning_trial.py sd_net@0.01,sdct_net@0.01,sdct_net@0.05 [SIZE] [EPOCHS]

Variants: ``sd_net``, ``sdct_net`` (paper: log10(1 + |DCT|)), ``sdct_signed`` (the released
code's signed log), ``sdct_posnorm`` (each DCT coefficient standardised over the batch, running
statistics in eval), ``sdct_chnorm`` (per channel), ``sdct_released`` (the released code's
initialisation); ``@lr`` sets the learning rate.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from blastscope.engine.allocator import keep_freed_memory
from blastscope.engine.tensors import to_model_input
from blastscope.models import create_model

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "all-smear-taleqani"


class PositionNorm(nn.Module):
    """Each (channel, u, v) DCT coefficient standardised over the batch (running statistics in eval)."""

    def __init__(self, c: int, h: int, w: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(c * h * w, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.flatten(1)).reshape(x.shape)


def load(size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, cls in enumerate(["early_malignant", "pre_malignant"]):
        for path in sorted((ROOT / cls).iterdir()):
            image = cv2.imread(str(path))[:, :, ::-1]
            images.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
            labels.append(label)
    return np.stack(images), np.array(labels)


def build(variant: str, size: int) -> nn.Module:
    torch.manual_seed(0)
    if variant == "sd_net":
        return create_model("sd_net")
    kwargs = {"dct_output": "signed_log"} if "signed" in variant else {}
    if "released" in variant:
        kwargs["init"] = "released"
    model = create_model("sdct_net", **kwargs)
    if "posnorm" in variant:
        model.front.append(PositionNorm(3, size, size))
    if "chnorm" in variant:
        model.front.append(nn.BatchNorm2d(3, affine=False))
    return model


def main() -> None:
    if not ROOT.is_dir():
        sys.exit(f"the smear set is not at {ROOT}")
    keep_freed_memory()
    variants = sys.argv[1].split(",")
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    x_all, y_all = load(size)
    order = np.random.default_rng(0).permutation(len(x_all))
    cut = int(0.75 * len(order))
    train, held = order[:cut], order[cut:]
    for spec in variants:
        name, lr = (spec.split("@") + ["0.01"])[:2]
        model = build(name, size)
        opt = torch.optim.SGD(model.parameters(), lr=float(lr), momentum=0.9, weight_decay=1e-4)
        accuracies, t0 = [], time.perf_counter()
        for epoch in range(epochs):
            model.train()
            perm = np.random.default_rng(epoch).permutation(train)
            for i in range(0, len(perm), 32):
                batch = x_all[perm[i:i + 32]].copy()
                flip = np.random.default_rng(epoch * 1000 + i).random(len(batch)) < 0.5
                batch[flip] = batch[flip][:, :, ::-1]
                loss = F.cross_entropy(model(to_model_input(torch.from_numpy(np.ascontiguousarray(batch)))),
                                       torch.from_numpy(y_all[perm[i:i + 32]]))
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                pred = np.concatenate([model(to_model_input(torch.from_numpy(x_all[held[i:i + 64]]))).argmax(1).numpy()
                                       for i in range(0, len(held), 64)])
            accuracies.append(round(float((pred == y_all[held]).mean()), 3))
        print(json.dumps({"variant": spec, "held_out_accuracy_per_epoch": accuracies,
                          "seconds": round(time.perf_counter() - t0)}), flush=True)


if __name__ == "__main__":
    main()
