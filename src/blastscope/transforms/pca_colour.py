"""Dataset-level PCA colour augmentation (AlexNet's method, as cited by LeukemiaNet section 3.1.2).

Krizhevsky et al. (2012, section 4.1) compute the 3 x 3 RGB covariance over the pixels of the
whole training set once, and for each image draw ``alpha_i ~ N(0, 0.1)`` and add
``sum_i alpha_i * lambda_i * e_i`` to every pixel. LeukemiaNet's section 3.1.2 describes the same
steps (per-channel means, 3 x 3 covariance, eigenvectors sorted by eigenvalue, multiples of the
principal components with magnitudes proportional to the eigenvalues times N(0, 0.1)).

Deliberate choices:
- Dataset level, fitted once per training set (never on validation or test images), unlike
  albumentations' ``FancyPCA``, which recomputes the eigenvectors of each image.
- Pixels are in 0-255 grey levels, AlexNet's convention: the eigenvalues have units of
  intensity squared, so at a [0, 1] scale (this transform before) the shift was inert (largest
  shift 4 grey levels in 200 draws). At 0-255 the shift along the first component has a standard
  deviation of ``alpha_std * lambda_1`` grey levels, e.g. about 40 for C-NMC-like cells
  (lambda_1 ~ 400); a test checks its size on a real cell.
- ``ignore_black=True`` leaves pure-black pixels (every channel <= ``black_level``) out of the
  covariance: on C-NMC about 80% of the pixels are black background, which would otherwise
  dominate the first component (a black-to-cell brightness axis) instead of the stain colours.
  The shift itself is added to every pixel, background included, as in AlexNet.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from blastscope.ops.colour_pca import add_colour_shift, covariance_eigen
from blastscope.transforms.compose import ParamRepr

__all__ = ["PCAColourAugment"]


class PCAColourAugment(ParamRepr):
    """Add a random multiple of the training set's RGB principal components to an image.

    Attributes set by :meth:`fit`:
        mean_: (3,) mean RGB of the counted pixels, grey levels 0-255.
        eigenvalues_: (3,) eigenvalues of the RGB covariance, descending (grey levels squared).
        eigenvectors_: (3, 3) unit eigenvectors in columns, matching ``eigenvalues_``.
        n_pixels_: number of pixels counted.
    """

    def __init__(self, alpha_std: float = 0.1, ignore_black: bool = True, black_level: int = 0) -> None:
        if not alpha_std >= 0:
            raise ValueError(f"alpha_std must be >= 0, got alpha_std={alpha_std}")
        if not 0 <= black_level < 255:
            raise ValueError(f"black_level must be in [0, 255), got black_level={black_level}")
        self.alpha_std = float(alpha_std)
        self.ignore_black = bool(ignore_black)
        self.black_level = int(black_level)

    def fit(self, images: Iterable[np.ndarray]) -> PCAColourAugment:
        """Eigen-decompose the RGB covariance of all (non-black) pixels of ``images`` in one pass.

        Args:
            images: uint8 H x W x 3 RGB arrays (sizes may differ), read once.
        """
        n, mean, m2 = 0, np.zeros(3), np.zeros((3, 3))
        for index, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"image {index} must be a uint8 H x W x 3 RGB array, got shape={getattr(image, 'shape', None)} "
                    f"dtype={getattr(image, 'dtype', type(image).__name__)}"
                )
            pixels = image.reshape(-1, 3)
            if self.ignore_black:
                pixels = pixels[(pixels > self.black_level).any(axis=1)]
            if len(pixels) == 0:
                continue
            pixels = pixels.astype(np.float64)
            n_b, mean_b = len(pixels), pixels.mean(axis=0)
            centred = pixels - mean_b
            # Chan et al.'s pairwise update: exact, and free of the cancellation of sum(x x^T) - n m m^T.
            delta = mean_b - mean
            total = n + n_b
            m2 = m2 + centred.T @ centred + np.outer(delta, delta) * (n * n_b / total)
            mean = mean + delta * (n_b / total)
            n = total
        if n < 2:
            raise ValueError(f"need at least 2 counted pixels to fit, got {n} (all images empty or black?)")
        self.mean_ = mean
        self.n_pixels_ = n
        self.eigenvalues_, self.eigenvectors_ = covariance_eigen(m2 / (n - 1))
        return self

    @classmethod
    def from_eigen(
        cls, eigenvalues: np.ndarray, eigenvectors: np.ndarray, alpha_std: float = 0.1
    ) -> PCAColourAugment:
        """Rebuild a fitted transform from saved ``eigenvalues_`` (3,) and ``eigenvectors_`` (3, 3)."""
        eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
        eigenvectors = np.asarray(eigenvectors, dtype=np.float64)
        if eigenvalues.shape != (3,) or eigenvectors.shape != (3, 3):
            raise ValueError(
                f"expected eigenvalues (3,) and eigenvectors (3, 3), got {eigenvalues.shape} and {eigenvectors.shape}"
            )
        augment = cls(alpha_std=alpha_std)
        augment.eigenvalues_, augment.eigenvectors_ = eigenvalues, eigenvectors
        return augment

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shift ``image`` (uint8 H x W x 3 RGB) by one colour drawn with ``alpha ~ N(0, alpha_std)``."""
        if not hasattr(self, "eigenvectors_"):
            raise RuntimeError("PCAColourAugment is not fitted; call fit(training_images) first")
        alpha = rng.normal(0.0, self.alpha_std, size=3)
        return add_colour_shift(image, self.eigenvalues_, self.eigenvectors_, alpha)
