"""Benchmark inputs: the C-NMC sample cells (when present) or synthetic cell-like images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MISSING", "cell_batch", "cell_paths", "load_cells"]

MISSING = "C-NMC sample cells not found at {path}; pass --data DIR with 450x450 C-NMC cells"


def cell_paths(data_dir: Path | None) -> list[Path]:
    """Image files directly in ``data_dir`` (sorted); empty when the folder is absent or None."""
    from blastscope.data.decode import IMAGE_SUFFIXES

    if data_dir is None or not Path(data_dir).is_dir():
        return []
    return sorted(p for p in Path(data_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_cells(data_dir: Path | None, size: int) -> np.ndarray | None:
    """The cells centred on a 350 canvas (the paper's crop), resized to ``size`` if it differs.

    Returns N x size x size x 3 uint8, or None when there are no cells.
    """
    from blastscope.data.preprocess import Preprocess, load_preprocessed

    paths = cell_paths(data_dir)
    if not paths:
        return None
    pre = Preprocess(canvas=350, resize=None if size == 350 else size)
    return np.stack([load_preprocessed(p, pre) for p in paths])


def _synthetic(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Stained-disc 'cells' on black: enough structure for realistic DCT spectra and activations."""
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        cy, cx = size / 2 + rng.normal(0, size / 20, 2)
        r = size * rng.uniform(0.2, 0.35)
        d = np.hypot(yy - cy, xx - cx)
        cell = d < r
        nucleus = d < r * rng.uniform(0.5, 0.8)
        out[i][cell] = (200 + rng.integers(-20, 20, 3)).clip(0, 255)
        out[i][nucleus] = (rng.integers(60, 140), rng.integers(20, 80), rng.integers(120, 200))
        noise = rng.integers(-12, 12, (size, size, 3))
        out[i] = np.where(cell[..., None], (out[i].astype(int) + noise).clip(0, 255), 0).astype(np.uint8)
    return out


def cell_batch(cells: np.ndarray | None, n: int, size: int, seed: int) -> np.ndarray:
    """``n`` training-like images: the cells under the SDCT augmentation (each item its own draw),
    or synthetic cells when ``cells`` is None. Returns n x size x size x 3 uint8."""
    from blastscope.transforms.sdct_augment import sdct_train_transform

    rng = np.random.default_rng(seed)
    if cells is None:
        return _synthetic(n, size, rng)
    transform = sdct_train_transform()
    return np.stack([transform(cells[i % len(cells)], np.random.default_rng([seed, i])) for i in range(n)])
