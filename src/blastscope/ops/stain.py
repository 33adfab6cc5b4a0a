"""Stain matrices: a Macenko-style estimate, a fixed default, and the inverse.

Conventions (those of scikit-image's ``skimage.color``): a stain matrix ``m`` is 3 x 3 with one
stain per ROW, each row a unit vector of optical densities (R, G, B). Beer-Lambert with row
vectors reads ``od = c @ m`` for concentrations ``c`` (1 x 3), so the concentrations are
``c = od @ inverse_stain_matrix(m)`` with ``inverse_stain_matrix(m) = inv(m)``, which is what
``skimage.color.separate_stains`` takes as ``conv_matrix``. A 1x1 convolution acting on
channel-first images therefore needs the TRANSPOSE of that inverse as its weight.

The SD layer of SDCT-AuxNet-theta (Gehlot et al. 2020, section 3.2) is initialised, in the
authors' released code, from a Macenko-style SVD estimate on one reference cell image with an
OD-norm threshold of 0.15 and an angle percentile of 99.9 (Macenko et al., ISBI 2009,
"A method for normalizing histology slides for quantitative analysis").
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["macenko_stain_matrix", "default_stain_matrix", "inverse_stain_matrix", "optical_density_np"]

# Ruifrok & Johnston 2001 (Anal. Quant. Cytol. Histol. 23(4)): hematoxylin, eosin, DAB rows;
# the values scikit-image ships as ``skimage.color.rgb_from_hed``.
_RUIFROK_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)


def default_stain_matrix() -> np.ndarray:
    """Fixed H&E-DAB stain matrix of Ruifrok & Johnston (2001), rows normalised to unit length.

    These are the values of scikit-image's ``rgb_from_hed`` (hematoxylin, eosin, DAB), each row
    divided by its L2 norm. Used when no reference image is given; C-NMC cells are Jenner-Giemsa
    stained, so a Macenko estimate from a reference cell (what the released SDCT code uses)
    is the better initialisation when data is at hand.

    Returns:
        3 x 3 float64 array, one unit-length stain OD vector (R, G, B) per row.
    """
    return _RUIFROK_HED / np.linalg.norm(_RUIFROK_HED, axis=1, keepdims=True)


def inverse_stain_matrix(m: np.ndarray) -> np.ndarray:
    """Inverse ``inv(m)`` of a 3 x 3 stain matrix: row-vector concentrations ``c = od @ inv(m)``.

    Raises:
        ValueError: if ``m`` is not 3 x 3, not finite, or singular.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"stain matrix must be 3 x 3, got shape={m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"stain matrix must be finite, got m={m.tolist()}")
    cond = np.linalg.cond(m)
    if not np.isfinite(cond) or cond > 1e12:
        raise ValueError(f"stain matrix is singular (condition number {cond:.3g}), got m={m.tolist()}")
    return np.linalg.inv(m)


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"each image must be H x W x 3 RGB, got shape={image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype={image.dtype}")
    return image.astype(np.float64)


def optical_density_np(rgb: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """:func:`blastscope.ops.optical_density.optical_density` in NumPy (same rule: exact zeros are
    background, OD 0; positive values floored at ``eps``), so stain checks need no PyTorch."""
    rgb = np.asarray(rgb)
    return -np.log10(np.maximum(np.where(rgb == 0, 1.0, rgb), eps)).astype(rgb.dtype, copy=False)


def macenko_stain_matrix(
    rgb: np.ndarray | Sequence[np.ndarray],
    od_threshold: float = 0.15,
    percentile: float = 99.9,
    od_log: str = "log10",
) -> np.ndarray:
    """Macenko-style estimate of the stain matrix from one or more reference images.

    Steps (Macenko et al. 2009, as used by the released SDCT-AuxNet-theta code):
    1. optical density of every pixel (:func:`optical_density`; exact zeros -> OD 0);
    2. keep pixels whose OD vector has L2 norm > ``od_threshold`` (drops background);
    3. top-2 eigenvectors of the covariance of the kept OD vectors (the stain plane);
    4. angle of each pixel's projection on that plane; the ``100 - percentile`` and
       ``percentile`` angle percentiles give the two stain directions (robust extremes);
    5. third stain = normalised cross product of the first two.

    Ordering and signs: the stain with the larger red OD component comes first (the
    hematoxylin-first rule of Macenko's reference code); the first two rows are oriented to have
    a positive sum (absorbance is positive); the third row is ``cross(row0, row1)`` as it falls.

    Args:
        rgb: one H x W x 3 RGB image or a sequence of them, uint8 or float in [0, 1].
            Pixels of all images are pooled.
        od_threshold: OD-norm threshold, >= 0.
        percentile: angle percentile in (50, 100].
        od_log: "log10" (``-log10 I``, the SD layer's optical density) or "ln" (``-ln I``, what the
            released code's Macenko step uses). The stain directions are scale-free; the log only
            changes which pixels pass ``od_threshold`` (ln OD norms are 2.3 times larger).

    Returns:
        3 x 3 float64 array, one unit-length stain vector per row.
    """
    if od_threshold < 0:
        raise ValueError(f"od_threshold must be >= 0, got od_threshold={od_threshold}")
    if od_log not in ("log10", "ln"):
        raise ValueError(f"od_log must be 'log10' or 'ln', got od_log={od_log!r}")
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got percentile={percentile}")
    images = [rgb] if isinstance(rgb, np.ndarray) and rgb.ndim == 3 else list(rgb)
    if not images:
        raise ValueError("rgb must hold at least one image, got an empty sequence")
    pixels = np.concatenate([_as_unit_float(im).reshape(-1, 3) for im in images], axis=0)
    od = optical_density_np(pixels)
    if od_log == "ln":  # the released code's natural-log OD: the same directions, 2.3x the norms
        od = od * np.log(10.0)
    od = od[np.linalg.norm(od, axis=1) > od_threshold]
    if od.shape[0] < 3:
        raise ValueError(
            f"only {od.shape[0]} pixels have OD norm > od_threshold={od_threshold}; "
            "need at least 3 (is the image blank?)"
        )

    _, eigvecs = np.linalg.eigh(np.cov(od, rowvar=False))
    plane = eigvecs[:, [2, 1]]  # principal direction first
    if plane[:, 0].sum() < 0:  # OD points must project positively, else angles wrap at +-pi
        plane[:, 0] *= -1
    projection = od @ plane
    phi = np.arctan2(projection[:, 1], projection[:, 0])
    low, high = np.percentile(phi, [100.0 - percentile, percentile])
    stains = [plane @ np.array([np.cos(a), np.sin(a)]) for a in (low, high)]
    stains = [v / np.linalg.norm(v) for v in stains]
    stains = [-v if v.sum() < 0 else v for v in stains]
    if stains[0][0] < stains[1][0]:
        stains = stains[::-1]
    third = np.cross(stains[0], stains[1])
    norm = np.linalg.norm(third)
    if norm < 1e-8:
        raise ValueError("the two estimated stain vectors are parallel; the image has one stain only")
    return np.stack([stains[0], stains[1], third / norm])
