"""PCA colour shift (Krizhevsky et al. 2012, "ImageNet classification with deep CNNs", section 4.1).

AlexNet adds to every pixel ``I_xy = [R, G, B]`` the vector ``[p1, p2, p3] [a1*l1, a2*l2, a3*l3]^T``
where ``p_i``, ``l_i`` are the eigenvectors and eigenvalues of the 3 x 3 RGB covariance of the
training pixels and ``a_i ~ N(0, 0.1)`` is drawn once per image. LeukemiaNet (section 3.1.2) uses
this method. The pure maths lives here; the fitted transform is
:class:`blastscope.transforms.pca_colour.PCAColourAugment`.

Pixels are in AlexNet's 0-255 grey levels. The shift scales with the eigenvalues, which have
units of intensity squared, so the scale matters: at [0, 1] (this module before) the eigenvalues
are 255^2 times smaller and the shift was inert (largest shift 4 grey levels in 200 draws on a
synthetic cell); at 0-255, as AlexNet, the first component moves the colour by tens of grey levels.
"""
from __future__ import annotations

import numpy as np

__all__ = ["covariance_eigen", "rgb_covariance_eigen", "colour_shift", "add_colour_shift"]


def covariance_eigen(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric 3 x 3 covariance, largest eigenvalue first.

    Each eigenvector's sign is fixed so its largest-magnitude component is positive (eigenvectors
    are otherwise defined only up to sign). Tiny negative eigenvalues from rounding are set to 0.

    Returns:
        ``(eigenvalues, eigenvectors)``: shape (3,) descending, and (3, 3) with eigenvector ``i``
        in column ``i``.
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    if covariance.shape != (3, 3):
        raise ValueError(f"covariance must be 3 x 3, got shape={covariance.shape}")
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    eigenvectors = eigenvectors[:, order]
    signs = np.sign(eigenvectors[np.argmax(np.abs(eigenvectors), axis=0), np.arange(3)])
    return eigenvalues, eigenvectors * signs


def rgb_covariance_eigen(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues/eigenvectors of the RGB covariance of ``pixels`` (N x 3, grey levels 0-255).

    Uses the unbiased covariance (divisor N - 1). See :func:`covariance_eigen` for the ordering.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim != 2 or pixels.shape[1] != 3 or pixels.shape[0] < 2:
        raise ValueError(f"pixels must be N x 3 with N >= 2, got shape={pixels.shape}")
    return covariance_eigen(np.cov(pixels, rowvar=False))


def colour_shift(eigenvalues: np.ndarray, eigenvectors: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The RGB vector ``sum_i alpha_i * eigenvalues_i * eigenvectors[:, i]`` (shape (3,), grey levels)."""
    return np.asarray(eigenvectors, dtype=np.float64) @ (
        np.asarray(alpha, dtype=np.float64) * np.asarray(eigenvalues, dtype=np.float64)
    )


def add_colour_shift(
    image: np.ndarray, eigenvalues: np.ndarray, eigenvectors: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """Add :func:`colour_shift` to every pixel of a uint8 H x W x 3 RGB image.

    The shift (grey levels; eigenvalues of the 0-255 covariance) is added, the result clipped to
    [0, 255] and rounded back to uint8, so ``alpha = 0`` returns the image unchanged.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 RGB array, got shape={image.shape} dtype={image.dtype}")
    shift = colour_shift(eigenvalues, eigenvectors, alpha)
    shifted = image.astype(np.float64) + shift
    return np.rint(np.clip(shifted, 0.0, 255.0)).astype(np.uint8)
