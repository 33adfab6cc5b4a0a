"""Offline dataset expansion: write originals plus augmented copies to disk, one folder per class.

LeukemiaNet (section 4.3) trains on enlarged sets written beforehand: "Dataset 1" = originals +
conventional augmentations (:mod:`blastscope.transforms.conventional`), "Dataset 2" = Dataset 1 +
PCA colour augmentation (:mod:`blastscope.transforms.pca_colour`); Spike-PCA-ResNet enlarges its
sets the same way. Dataset 2 (1,676 images) is Dataset 1 (1,492) plus extra images, so the PCA
colour images are written here as additional copies of each original, not applied on top of
the conventional copies.

Layout written under ``out_dir`` (stems are the source file names without suffix)::

    <label>/<stem>_orig.png                 the original, re-encoded losslessly
    <label>/<stem>_c<k>.png                 copy k = transform(original), k = 000 .. copies-1
    <label>/<stem>_c<k>_<name>.png          copy k of each named transform, if ``transform`` is a mapping
    <label>/<stem>_pca<k>.png               copy k = pca(original), k = 000 .. pca_copies-1, if ``pca``

Reproducibility: each source's generator is seeded from ``seed`` and a hash of ``<label>/<stem>``,
so the same seed writes byte-identical files whatever the order or number of the other items.
Only expand the TRAINING part of a split: augmented copies of one image in two folds leak.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from blastscope.transforms.compose import Transform
from blastscope.transforms.pca_colour import PCAColourAugment

__all__ = ["expand_dataset"]

logger = logging.getLogger(__name__)


def _read_rgb(path: Path) -> np.ndarray:
    """Read an image file as uint8 H x W x 3 RGB (grey is repeated, an alpha channel dropped).

    Kept here because ``transforms`` may not import ``data`` (layering); it matches
    :func:`blastscope.data.decode.read_image` for 8-bit files with opaque alpha.

    Raises:
        ValueError: naming ``path`` if the file is missing, unreadable or not 8-bit.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image file {path} (missing, not an image, or unsupported format)")
    if image.dtype != np.uint8:
        raise ValueError(f"image file {path} has dtype {image.dtype}; only 8-bit images are supported")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ValueError(f"image file {path} has {image.shape[2]} channels; expected 1, 3 or 4")


def _write_png_atomic(path: Path, image: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode PNG for {path}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _source_rng(seed: int, label: str, stem: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{label}/{stem}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _check_output(image: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must return a uint8 H x W x 3 array, got {getattr(image, 'shape', image)!r}")
    return image


def expand_dataset(
    items: list[tuple[Path, str]],
    out_dir: Path,
    copies: int,
    transform: Transform | Mapping[str, Transform],
    seed: int,
    pca: PCAColourAugment | None = None,
    *,
    pca_copies: int = 1,
) -> list[Path]:
    """Write each original and its augmented copies as ``out_dir/<label>/*.png``.

    Args:
        items: ``(image path, class label)`` pairs; labels become folder names.
        out_dir: output root (created if needed); existing files of the same name are replaced.
        copies: augmented copies per original (per named transform if ``transform`` is a mapping).
        transform: a transform ``t(image, rng)``, or a mapping ``name -> transform`` to write every
            named augmentation (e.g. :func:`leukemianet_conventional_augmentations`).
        seed: the same seed reproduces byte-identical files.
        pca: a FITTED :class:`PCAColourAugment` (fit it on the training originals); adds
            ``pca_copies`` colour-shifted copies of each original.
        pca_copies: number of PCA colour copies per original when ``pca`` is given.

    Returns:
        The written paths, in order: per item, original, transform copies, PCA copies.
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got copies={copies}")
    if pca_copies < 0:
        raise ValueError(f"pca_copies must be >= 0, got pca_copies={pca_copies}")
    if pca is not None and not hasattr(pca, "eigenvectors_"):
        raise ValueError("pca must be fitted before expanding; call pca.fit(training_images)")
    named = dict(transform) if isinstance(transform, Mapping) else {"": transform}
    for name, t in named.items():
        if not callable(t):
            raise TypeError(f"transform {name!r} is not callable: {t!r}")
        if any(c in name for c in '/\\.'):
            raise ValueError(f"transform names become file names; got name={name!r}")
    seen: dict[tuple[str, str], Path] = {}
    for path, label in items:
        path = Path(path)
        if not label or label in (".", "..") or "/" in label or "\\" in label:
            raise ValueError(f"label must be a plain folder name, got label={label!r} for {path}")
        key = (label, path.stem)
        if key in seen:
            raise ValueError(f"two sources with stem {path.stem!r} in class {label!r}: {seen[key]} and {path}")
        seen[key] = path

    out_dir = Path(out_dir)
    written: list[Path] = []
    for path, label in items:
        path = Path(path)
        image = _read_rgb(path)
        rng = _source_rng(seed, label, path.stem)
        folder = out_dir / label
        folder.mkdir(parents=True, exist_ok=True)
        written.append(_write_png_atomic(folder / f"{path.stem}_orig.png", image))
        for k in range(copies):
            for name, t in named.items():
                result = _check_output(t(image, rng), f"transform {name!r}" if name else "transform")
                target = folder / (f"{path.stem}_c{k:03d}_{name}.png" if name else f"{path.stem}_c{k:03d}.png")
                written.append(_write_png_atomic(target, result))
        if pca is not None:
            for k in range(pca_copies):
                written.append(_write_png_atomic(folder / f"{path.stem}_pca{k:03d}.png", pca(image, rng)))
    logger.info("expanded %d originals into %d images under %s", len(items), len(written), out_dir)
    return written
