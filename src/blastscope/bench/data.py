"""Data-pipeline cases: decode + crop + SDCT augmentation per core (OpenCV vs PIL), and data waiting.

Optimised: what training runs, :func:`blastscope.data.decode.read_image` + the 350 canvas
(:class:`blastscope.data.preprocess.Preprocess`) + :func:`blastscope.transforms.sdct_augment.sdct_train_transform`.
Reference: the obvious PIL code of the released training script's torchvision-style pipeline:
``Image.open``, a centre crop of 350, then flips, an affine shear, ``GaussianBlur`` and
``rotate``, drawing the same parameters from the same generator in the same order, so the two
augmentations can be compared image by image. Both run on one core (OpenCV threads set to 1).

Data waiting: the trainer assembles each batch in its own process before the step
(``num_workers=0``), so the share of a step spent on data is ``t_data / (t_data + t_step)``,
with ``t_data`` the time to build one batch from the decoded-image cache
(:class:`blastscope.data.cache.ImageCache`) or from the image files.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from blastscope.bench.config import BenchConfig
from blastscope.bench.result import CaseResult

__all__ = ["run_data"]

CANVAS = 350
AUG_MEAN_ABS_TOL = 3.0  # grey levels: OpenCV (fixed-point bilinear) vs PIL (float) interpolation and box-blur


def _pil_augment(im, rng: np.random.Generator):
    """The SDCT augmentation with PIL, drawing from ``rng`` exactly as ``sdct_train_transform`` does."""
    import math

    from PIL import Image, ImageFilter

    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if rng.random() < 0.5:
        t = math.tan(math.radians(rng.uniform(-20.0, 20.0)))
        # output -> input map about the centre, in PIL's coordinates (pixel centres at +0.5)
        im = im.transform(im.size, Image.Transform.AFFINE, (1.0, -t, t * im.size[1] / 2.0, 0.0, 1.0, 0.0),
                          resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    if rng.random() < 0.2:
        sigma = rng.uniform(0.0, 0.75)
        if sigma > 0:
            im = im.filter(ImageFilter.GaussianBlur(sigma))
    return im.rotate(rng.uniform(0.0, 360.0), resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def _pil_load(path: Path):
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    left, top = (w - CANVAS) // 2, (h - CANVAS) // 2
    return im.crop((left, top, left + CANVAS, top + CANVAS))


def _rate(fn, n: int) -> float:
    fn(0)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


class _Repeat:
    """Item ``i`` of a length-``n`` view over fewer images (``base[i % len(base)]``)."""

    def __init__(self, base, n: int) -> None:
        self.base, self.n = base, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return self.base[int(i) % len(self.base)]


class _Files:
    """Decode + preprocess on access (no cache)."""

    def __init__(self, paths: list[Path], preprocess) -> None:
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        from blastscope.data.preprocess import load_preprocessed

        return load_preprocessed(self.paths[int(i)], self.preprocess)


def _batch_seconds(images, batch: int, transform) -> float:
    """Time for the trainer's loader (num_workers=0) to assemble one augmented batch of ``batch``."""
    from torch.utils.data import DataLoader

    from blastscope.engine.sampling import AugmentedImages

    dataset = AugmentedImages(_Repeat(images, batch), np.arange(batch) % 2, transform, seed=0, balance="none")
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=0)
    next(iter(loader))  # warm
    t0 = time.perf_counter()
    next(iter(loader))
    return time.perf_counter() - t0


def run_data(cfg: BenchConfig, paths: list[Path], step_seconds: float | None, batch: int) -> list[CaseResult]:
    """Cases ``data_pipeline`` and ``data_wait``; ``step_seconds`` is the optimised training step time."""
    import cv2

    from blastscope.data.cache import ImageCache
    from blastscope.data.decode import read_image
    from blastscope.data.preprocess import Preprocess
    from blastscope.transforms.sdct_augment import sdct_train_transform

    transform = sdct_train_transform()
    pre = Preprocess(canvas=CANVAS)
    n = cfg.data_images

    def ours(i: int) -> np.ndarray:
        return transform(pre(read_image(paths[i % len(paths)])), np.random.default_rng([0, i]))

    def pil(i: int) -> np.ndarray:
        return np.asarray(_pil_augment(_pil_load(paths[i % len(paths)]), np.random.default_rng([0, i])))

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        rate, ref_rate = _rate(ours, n), _rate(pil, n)
        agreement = _agreement(paths, transform)
    finally:
        cv2.setNumThreads(threads)
    cases = [CaseResult(
        "data_pipeline", "Decode + centre crop + SDCT augmentation, one core (OpenCV vs PIL)", "img/s", rate, ref_rate,
        target=">= 4x reference", met=rate / ref_rate >= 4.0, agreement=agreement,
        notes=f"{n} images from {len(paths)} C-NMC cells; ours centres the cell on a 350 canvas, the reference "
              "crops the central 350 (the released code's crop)")]

    with tempfile.TemporaryDirectory() as tmp:
        cached = ImageCache(Path(tmp)).array([str(p) for p in paths], pre)
        t_cached = _batch_seconds(cached, batch, transform)
    t_files = _batch_seconds(_Files(paths, pre), batch, transform)
    if step_seconds is None:
        cases.append(CaseResult("data_wait", "Data waiting share of a training step", "share", None, None,
                                extra={"batch_s_cached": t_cached, "batch_s_files": t_files}, skipped="no step time"))
        return cases
    share, share_files = t_cached / (t_cached + step_seconds), t_files / (t_files + step_seconds)
    cases.append(CaseResult(
        "data_wait", f"Data waiting share of a training step (batch {batch}), cache vs files", "share", share,
        share_files, higher_is_better=False, target="<= 0.10 with the cache", met=share <= 0.10,
        notes=f"one batch: {t_cached * 1e3:.0f} ms from the cache, {t_files * 1e3:.0f} ms decoding files; "
              f"step {step_seconds:.2f} s",
        extra={"batch_s_cached": t_cached, "batch_s_files": t_files, "step_s": step_seconds}))
    return cases


def _agreement(paths: list[Path], transform, k: int = 8) -> dict:
    """Decoding must be identical; the augmentations, given the same draws, close (interpolation)."""
    from blastscope.data.decode import read_image

    decode_diff, aug_mean, aug_p99 = 0, [], []
    for i in range(min(k, len(paths))):
        ref = _pil_load(paths[i])
        full = read_image(paths[i])
        top, left = (full.shape[0] - CANVAS) // 2, (full.shape[1] - CANVAS) // 2
        ours_crop = full[top:top + CANVAS, left:left + CANVAS]
        decode_diff = max(decode_diff, int(np.abs(ours_crop.astype(int) - np.asarray(ref, dtype=int)).max()))
        a = transform(np.ascontiguousarray(np.asarray(ref)), np.random.default_rng([1, i])).astype(float)
        b = np.asarray(_pil_augment(ref, np.random.default_rng([1, i])), dtype=float)
        diff = np.abs(a - b)
        aug_mean.append(float(diff.mean()))
        aug_p99.append(float(np.percentile(diff, 99)))
    mean = float(np.mean(aug_mean)) if aug_mean else 0.0
    return {"max_abs_decode_diff": decode_diff, "mean_abs_augment_diff": mean, "p99_abs_augment_diff": max(aug_p99, default=0.0),
            "tolerance_mean": AUG_MEAN_ABS_TOL, "ok": decode_diff == 0 and mean <= AUG_MEAN_ABS_TOL}
