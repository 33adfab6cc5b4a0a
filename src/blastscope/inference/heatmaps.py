"""Why the model decided: heatmaps in the image domain, with Captum (the ``explain`` extra).

The CNNs of SDCT-AuxNet-theta and LeukoNet read the DCT of the stain-deconvolution layer's
output, so their convolution maps are laid out over FREQUENCIES, not image positions: a Grad-CAM
taken at a convolution layer would point at DCT coefficients. The map is therefore taken at the
input pixels: SmoothGrad (Captum's ``NoiseTunnel`` over ``Saliency``), the gradient of the
predicted class's log-probability with respect to each RGB pixel, with the gradient flowing back
through the DCT and stain layers, averaged over ``samples`` noisy copies of the cell (noise
``stdev`` 0.1 of the [0, 1] range), then the absolute value summed over the colour channels,
Gaussian-smoothed and scaled to [0, 1] per cell (by its 99.5th percentile, clipped). For an RGB CNN (SD-Net) the
same map is taken the same way, so arms compare. For several fold models the maps are averaged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["pixel_heatmaps", "overlay", "overlay_png", "write_overlays"]


def pixel_heatmaps(models: list, images: np.ndarray, targets: np.ndarray, samples: int = 8, stdev: float = 0.1,
                   seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """(N, H, W) maps in [0, 1] for ``images`` (uint8 N x H x W x 3) and the class ``targets``
    (N,), averaged over ``models`` (torch modules taking float B x 3 x H x W in [0, 1])."""
    import torch
    from captum.attr import NoiseTunnel, Saliency
    from scipy.ndimage import gaussian_filter

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    target = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    total = np.zeros(images.shape[:3], np.float64)
    torch.manual_seed(seed)
    for model in models:
        model.eval()

        def forward(inp, model=model):
            return torch.log_softmax(model(inp), dim=1)

        attribution = NoiseTunnel(Saliency(forward)).attribute(x.clone().requires_grad_(True), nt_type="smoothgrad",
                                                              nt_samples=samples, stdevs=stdev, target=target, abs=True)
        total += attribution.detach().abs().sum(dim=1).numpy()
    maps = np.stack([gaussian_filter(m, sigma) for m in total / max(len(models), 1)])
    # Scaled by the 99.5th percentile, not the maximum: the optical density -log(I) has steep
    # gradients at near-black pixels, and a few of them would otherwise wash the map out.
    peak = np.percentile(maps.reshape(len(maps), -1), 99.5, axis=1).reshape(-1, 1, 1)
    return np.clip(np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), 0.0), 0.0, 1.0)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB: ``image`` blended with the heat map in matplotlib's ``jet`` colours, the more the hotter
    the pixel (cold pixels show the cell unchanged)."""
    from matplotlib import colormaps

    h = np.clip(heat, 0, 1)[..., None]
    colours = colormaps["jet"](h[..., 0])[..., :3] * 255.0
    weight = alpha * np.sqrt(h)
    return np.clip((1 - weight) * image.astype(np.float64) + weight * colours, 0, 255).astype(np.uint8)


def overlay_png(image: np.ndarray, heat: np.ndarray) -> bytes:
    """PNG bytes of the cell beside its :func:`overlay` (what ``predict --heatmaps`` and the workstation show)."""
    import cv2

    pair = np.concatenate([image, overlay(image, heat)], axis=1)
    ok, png = cv2.imencode(".png", cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the heat-map image as PNG")
    return png.tobytes()


def write_overlays(out_dir: Path, names: list[str], images: np.ndarray, maps: np.ndarray) -> list[Path]:
    """One PNG per cell, ``<name>.heatmap.png`` (:func:`overlay_png`), into ``out_dir``."""
    from blastscope.engine.atomic import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image, heat in zip(names, images, maps):
        path = out_dir / f"{name}.heatmap.png"
        atomic_write(path, lambda p, data=overlay_png(image, heat): p.write_bytes(data))
        written.append(path)
    return written
