"""First-spike edge-latency encoding of cell images (Spike-PCA-ResNet preprocessing).

Noshad & Fallahi (2021), Section 2.2, Eqs. (1)-(3) and Algorithm 1, batched:

1. grayscale, scaled to [0, 1];
2. ``S_l = |I (*) G(theta_l)|`` with four Gabor kernels (:func:`blastscope.ops.gabor.gabor_bank`;
   paper: window 4, wavelength 2.5, effective width 2), zero "same" padding;
3. intensity-to-latency coding of the four maps jointly, ``T = 15`` steps
   (:mod:`blastscope.ops.latency`), then the first-spike latency map turned into an image,
   ``(T - latency) / T`` (earlier spike = brighter, no spike = 0);
4. Gaussian blur (Eq. 3) to remove low-intensity edges and noise.

Algorithm 1's "propagate spikes on a same-size 2-D grid of dummy neurons" only relays each
spike once, so the first-spike time equals the latency from step 3; it needs no separate code.
Algorithm 1's last step, the z-score of Eq. (4), is not done here: it is fitted on the
training fold by :class:`blastscope.estimators.pca_reconstruction.TrainZScore`, after the PCA
reconstruction, as in the authors' released script (which z-scored the test set with its own
statistics; we do not).

Choices where the paper is silent (deliberate, documented):

* Network input. The paper's PCA runs on "the gray scale images" and Fig. 3 shows one
  processed image, so the four orientation maps must be merged; the released script feeds
  100 x 100 grayscale images. ``combine="max"`` (default) keeps, per pixel, the earliest spike
  over the four orientations, giving ``B x 1 x H x W``; ``combine="none"`` keeps ``B x 4 x H x W``.
  Resizing to 100 x 100 is left to the resize transform that runs before this encoder.
* Gaussian blur sigma. Eq. (3) gives no value; default ``blur_sigma = 1.0`` pixel, kernel radius
  ``round(truncate * sigma)`` with ``truncate = 4`` and mirror borders (scipy's ``mode="mirror"``).
  ``blur_sigma = 0`` disables the blur.
* Grayscale uses the ITU-R BT.601 luma weights (OpenCV's RGB2GRAY); "grayscale normalisation"
  is read as the [0, 255] -> [0, 1] scaling the paper motivates, not a per-image min-max.

Latency coding ranks values within each image, so the output does not change when an input image
is multiplied by a positive constant (e.g. [0, 255] instead of [0, 1]).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from blastscope.ops.gabor import gabor_bank
from blastscope.ops.latency import latency_to_intensity, spike_latency

__all__ = ["EdgeLatencyEncoder", "gaussian_blur_batch"]

_LUMA = (0.299, 0.587, 0.114)


def gaussian_blur_batch(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with mirror padding; ``sigma = 0`` returns ``x``.

    The 1-D kernel is Eq. (3) sampled at integer offsets up to ``int(truncate * sigma + 0.5)`` and
    normalised to sum 1 (the same kernel as ``scipy.ndimage.gaussian_filter``). Batched float
    counterpart of the per-image uint8 :func:`blastscope.ops.geometry.gaussian_blur`.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got sigma={sigma}")
    if sigma == 0:
        return x
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = (kernel / kernel.sum()).to(dtype=x.dtype, device=x.device)
    channels = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


class EdgeLatencyEncoder:
    """Batched Algorithm 1 of Noshad & Fallahi (2021); see the module docstring.

    Args:
        window, wavelength, sigma, gamma, orientations, offset_deg: Gabor bank parameters
            (:func:`blastscope.ops.gabor.gabor_bank`); defaults are the paper's.
        timesteps: latency bins ``T`` (SpykeTorch default 15).
        blur_sigma: Gaussian blur standard deviation in pixels (0 = no blur).
        combine: ``"max"`` merges the orientation maps into one channel (earliest spike wins),
            ``"none"`` keeps one channel per orientation.

    ``encode`` works on batches of tensors; ``__call__`` follows the transform convention for a
    single uint8 image. No randomness is involved.
    """

    def __init__(
        self,
        window: int = 4,
        wavelength: float | None = 2.5,
        sigma: float | None = 2.0,
        gamma: float = 0.3,
        orientations: Sequence[float] = (45.0, 90.0, 135.0, 180.0),
        offset_deg: float = 22.5,
        timesteps: int = 15,
        blur_sigma: float = 1.0,
        combine: Literal["max", "none"] = "max",
    ) -> None:
        if isinstance(timesteps, bool) or not isinstance(timesteps, numbers.Integral) or timesteps < 1:
            raise ValueError(f"timesteps must be an integer >= 1, got timesteps={timesteps!r}")
        if not (blur_sigma >= 0 and math.isfinite(blur_sigma)):
            raise ValueError(f"blur_sigma must be a finite number >= 0, got blur_sigma={blur_sigma}")
        if combine not in ("max", "none"):
            raise ValueError(f"combine must be 'max' or 'none', got combine={combine!r}")
        self.kernels = gabor_bank(window, wavelength, sigma, orientations, offset_deg, gamma)
        self.timesteps = int(timesteps)
        self.blur_sigma = float(blur_sigma)
        self.combine = combine

    @property
    def out_channels(self) -> int:
        return 1 if self.combine == "max" else self.kernels.shape[0]

    def edge_response(self, gray: torch.Tensor) -> torch.Tensor:
        """Eq. (1): ``|I (*) G_l|`` for ``(B, 1, H, W)`` gray images -> ``(B, L, H, W)``, >= 0.

        Zero padding, "same" size; for an even window the extra row/column of padding goes to
        the bottom/right (as ``scipy.signal.correlate2d(mode="same")``).
        """
        k = self.kernels.shape[-1]
        before, after = (k - 1) // 2, k - 1 - ((k - 1) // 2)
        padded = F.pad(gray, (before, after, before, after))
        return F.conv2d(padded, self.kernels.to(dtype=gray.dtype, device=gray.device)).abs()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a batch.

        Args:
            x: float ``(B, 3, H, W)`` RGB or ``(B, 1, H, W)`` gray, values in [0, 1].

        Returns:
            float32 ``(B, 1, H, W)`` (``combine="max"``) or ``(B, L, H, W)``, values in [0, 1].
        """
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"x must be (B, 1 or 3, H, W), got shape={tuple(x.shape)}")
        x = x.to(torch.float32)
        if x.shape[1] == 3:
            weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        latency = spike_latency(self.edge_response(x), self.timesteps)
        image = latency_to_intensity(latency, self.timesteps)
        if self.combine == "max":
            image = image.amax(dim=1, keepdim=True)
        return gaussian_blur_batch(image, self.blur_sigma)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Encode one uint8 ``H x W x 3`` RGB (or ``H x W``) image -> float32 ``H x W x out_channels`` in [0, 1].

        ``rng`` is accepted for the transform interface and unused (the encoding is deterministic).
        """
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got dtype={image.dtype}")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3):
            raise ValueError(f"image must be H x W x 3 or H x W, got shape={image.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).unsqueeze(0)
        out = self.encode(batch.to(torch.float32) / 255.0)
        return out[0].permute(1, 2, 0).numpy()
