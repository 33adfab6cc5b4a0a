"""Spike-PCA-ResNet model input: edge-latency coding -> PCA reconstruction -> z-score, fitted per fold.

Noshad & Fallahi (2021), Section 2.2 (Algorithm 1, Eq. 4 and the PCA paragraph) and Fig. 4: every
image is turned into a first-spike edge-latency map, projected on the leading principal components
of the training images and reconstructed, z-scored, and fed to the ResNet of Table 2
(:func:`blastscope.models.spike_resnet.spike_resnet`, 1 x 100 x 100). The authors' released
script resizes to 100 x 100 grayscale, runs ``PCA(500)`` + ``inverse_transform`` and z-scores.

This class implements :class:`blastscope.engine.inputs.ModelInput`, so the steps fitted without
gradients run inside training and inference batches:

* ``fit(images)`` sees the fold's unaugmented TRAINING images only: the PCA
  (:class:`~blastscope.estimators.pca_reconstruction.PCAReconstruction`) and the z-score statistics
  (:class:`~blastscope.estimators.pca_reconstruction.TrainZScore`, computed on the training
  reconstructions) never see validation or test images.
* ``__call__(batch)`` converts any (possibly augmented) uint8 batch with those fitted values; the
  PCA reconstruction is two matrix products on the batch, ``((x - mean) C^T) C + mean``
  (scikit-learn's ``inverse_transform(transform(x))`` without whitening), in float32.
* ``to_arrays``/``load_arrays`` store the fitted state as plain arrays (safetensors, no pickle).

Deliberate differences from the released script (see also the two estimators' docstrings):

* validation and test batches are z-scored with the training fold's statistics, not their own;
* augmentation (``data.augment: spike``) acts on the RGB image before the encoding, so every
  augmented image is encoded and projected like a real one (the script augmented the inputs of the
  network, after the PCA);
* the resize to ``size`` uses bilinear interpolation with antialiasing (torch), and is skipped
  when the cached images already have that size (recipes set ``data.resize`` to it).
"""
from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from blastscope.estimators.pca_reconstruction import PCAReconstruction, TrainZScore
from blastscope.transforms.edge_latency import EdgeLatencyEncoder

__all__ = ["SpikeInput"]

logger = logging.getLogger(__name__)


class SpikeInput:
    """Fitted Spike-PCA-ResNet preprocessing as a batched model input.

    Args:
        size: side of the square network input (100 in the released script).
        n_components: PCA components, an int >= 1 (500 for C-NMC, 1200 for ALL-IDB in the paper) or
            a variance fraction in (0, 1] (the paper's "more than 99% variation" is 0.99).
        per_feature: z-score with per-pixel statistics instead of one scalar mean/std (Eq. 4 is
            ambiguous; the released script z-scores with scalars).
        chunk_size: images encoded at a time in ``fit`` (memory bound only).
        svd_solver, random_state: passed to the PCA.
        window, wavelength, sigma, gamma, orientations, offset_deg, timesteps, blur_sigma:
            :class:`~blastscope.transforms.edge_latency.EdgeLatencyEncoder` parameters; the
            defaults are the paper's (window 4, wavelength 2.5, effective width 2, T = 15).

    Fitted attributes: ``pca_``, ``zscore_``, ``n_components_``, ``explained_variance_ratio_``
    (total variance kept by the PCA, in [0, 1]).
    """

    def __init__(
        self,
        size: int = 100,
        n_components: int | float = 500,
        per_feature: bool = False,
        chunk_size: int = 256,
        svd_solver: str = "auto",
        random_state: int | None = 0,
        window: int = 4,
        wavelength: float | None = 2.5,
        sigma: float | None = 2.0,
        gamma: float = 0.3,
        orientations: Sequence[float] = (45.0, 90.0, 135.0, 180.0),
        offset_deg: float = 22.5,
        timesteps: int = 15,
        blur_sigma: float = 1.0,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 8:
            raise ValueError(f"size must be an integer >= 8, got size={size!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got chunk_size={chunk_size!r}")
        self.size = int(size)
        self.chunk_size = int(chunk_size)
        # the estimators validate n_components / per_feature at once
        self._pca = PCAReconstruction(n_components=n_components, svd_solver=svd_solver, random_state=random_state)
        self._zscore = TrainZScore(per_feature=per_feature)
        self.encoder = EdgeLatencyEncoder(
            window=window, wavelength=wavelength, sigma=sigma, gamma=gamma, orientations=tuple(orientations),
            offset_deg=offset_deg, timesteps=timesteps, blur_sigma=blur_sigma, combine="max",
        )

    # ------------------------------------------------------------------ steps
    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 ``B x H x W x 3`` (or ``B x H x W x 1``) -> float32 ``B x size*size`` edge-latency maps in [0, 1]."""
        if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[-1] not in (1, 3):
            raise ValueError(f"batch must be uint8 B x H x W x 3, got dtype={batch.dtype} shape={tuple(batch.shape)}")
        x = batch.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
            x = x.clamp_(0.0, 1.0)
        return self.encoder.encode(x).reshape(len(x), -1)

    def _reconstruct(self, flat: torch.Tensor) -> torch.Tensor:
        centred = flat - self._mean
        return (centred @ self._components.T) @ self._components + self._mean

    def _encode_all(self, images: np.ndarray) -> np.ndarray:
        out = np.empty((len(images), self.size * self.size), dtype=np.float32)
        for start in range(0, len(images), self.chunk_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.chunk_size]))
            out[start : start + len(chunk)] = self.encode(chunk).numpy()
        return out

    # ------------------------------------------------------------------ ModelInput
    @torch.no_grad()
    def fit(self, images: np.ndarray) -> SpikeInput:
        """Fit the PCA and the z-score on the fold's training images (``N x H x W x 3`` uint8, unaugmented)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) < 2:
            raise ValueError(
                f"images must be uint8 N x H x W x 3 with N >= 2, got dtype={images.dtype} shape={images.shape}"
            )
        features = self._encode_all(images)
        self._pca.fit(features)
        self._set_pca_tensors()
        recon = np.empty_like(features)
        for start in range(0, len(features), self.chunk_size):
            recon[start : start + self.chunk_size] = self._reconstruct(torch.from_numpy(features[start : start + self.chunk_size])).numpy()
        self._zscore.fit(recon)
        self._set_zscore_tensors()
        logger.info("spike input: PCA with %d components keeps %.2f%% of the training variance (%d images)",
                    self.n_components_, 100.0 * self.explained_variance_ratio_, len(images))
        return self

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 ``B x H x W x 3`` -> float32 ``B x 1 x size x size`` (z-scored PCA reconstruction)."""
        if not hasattr(self, "_components"):
            raise RuntimeError("SpikeInput is not fitted; call fit on the training fold (or load_arrays) first")
        recon = self._reconstruct(self.encode(batch))
        out = (recon - self._z_mean) / self._z_scale
        return out.reshape(len(batch), 1, self.size, self.size).contiguous()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as flat arrays: ``pca.*``, ``zscore.*`` and ``size``."""
        if not hasattr(self, "_components"):
            raise RuntimeError("SpikeInput is not fitted; nothing to export")
        arrays = {f"pca.{k}": v for k, v in self._pca.to_arrays().items()}
        arrays.update({f"zscore.{k}": v for k, v in self._zscore.to_arrays().items()})
        arrays["size"] = np.asarray([self.size], dtype=np.int64)
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> SpikeInput:
        """Restore the state written by :meth:`to_arrays` (the encoder settings come from ``__init__``)."""
        stored = int(np.asarray(arrays["size"]).reshape(-1)[0]) if "size" in arrays else None
        if stored != self.size:
            raise ValueError(f"stored model input has size={stored}, this SpikeInput has size={self.size}")
        self._pca = PCAReconstruction.from_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("pca.")})
        self._zscore = TrainZScore.from_arrays({k[7:]: v for k, v in arrays.items() if k.startswith("zscore.")})
        if self._pca.n_features_in_ != self.size * self.size:
            raise ValueError(f"stored PCA has {self._pca.n_features_in_} features, expected {self.size * self.size}")
        self._set_pca_tensors()
        self._set_zscore_tensors()
        return self

    # ------------------------------------------------------------------ helpers
    def _set_pca_tensors(self) -> None:
        pca = self._pca.pca_
        # C order whatever sklearn's SVD returned, so fitted and reloaded inputs run the same matmul
        self._components = torch.from_numpy(np.ascontiguousarray(pca.components_, dtype=np.float32))
        self._mean = torch.from_numpy(np.ascontiguousarray(pca.mean_, dtype=np.float32))
        self.pca_ = self._pca
        self.n_components_ = self._pca.n_components_
        self.explained_variance_ratio_ = self._pca.explained_variance_ratio_total_

    def _set_zscore_tensors(self) -> None:
        self._z_mean = torch.as_tensor(np.asarray(self._zscore.mean_, dtype=np.float32))
        self._z_scale = torch.as_tensor(np.asarray(self._zscore.scale_, dtype=np.float32))
        self.zscore_ = self._zscore

    def summary(self) -> dict[str, float | int]:
        """Fitted PCA summary for run records: ``{"n_components", "explained_variance_ratio"}``."""
        if not hasattr(self, "_components"):
            raise RuntimeError("SpikeInput is not fitted")
        return {"n_components": int(self.n_components_), "explained_variance_ratio": float(self.explained_variance_ratio_)}
