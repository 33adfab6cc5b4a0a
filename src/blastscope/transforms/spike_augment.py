"""Augmentation of Spike-PCA-ResNet (Noshad & Fallahi 2021, section 2.2, last paragraph).

The paper flips images horizontally, shifts them by up to 10% of the width and height, zooms by
20% and rotates by up to 30 degrees, to enlarge the training sets (ALL-IDB to 1,558 images,
C-NMC to 8,400). These are the options of Keras' ``ImageDataGenerator(horizontal_flip=True,
width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.2, rotation_range=30)``, which
draws them all for every image and warps once.

Deliberate differences and choices:
- Zoom is isotropic with the scale uniform in [0.8, 1.2]; Keras draws the two axes' factors
  independently (stretching the cell) and uses them inversely (its factor > 1 shrinks the image).
- The uncovered area is black, where Keras' default fill repeats the nearest edge pixel; the
  single-cell images sit on black backgrounds.
- The flip is applied before the affine warp (Keras flips after it; both are symmetric).
Use it online, or offline through :func:`blastscope.transforms.expand.expand_dataset` to
enlarge a set as the paper did.
"""
from __future__ import annotations

from blastscope.transforms.compose import Compose
from blastscope.transforms.geometric import FusedAffine, RandomFlip, RandomRotation, RandomTranslate, RandomZoom

__all__ = ["spike_train_transform"]


def spike_train_transform(
    shift_fraction: float = 0.1, zoom: float = 0.2, rotation_deg: float = 30.0
) -> Compose:
    """Horizontal flip (p=0.5), then one warp: rotation in [-rotation_deg, rotation_deg], zoom in
    [1 - zoom, 1 + zoom] about the centre, and a shift of up to ``shift_fraction`` of each side.

    Returns:
        a :class:`Compose` mapping uint8 H x W x 3 RGB to the same shape.
    """
    if not 0.0 <= shift_fraction <= 1.0:
        raise ValueError(f"shift_fraction must be in [0, 1], got shift_fraction={shift_fraction}")
    if not 0.0 <= zoom < 1.0:
        raise ValueError(f"zoom must be in [0, 1), got zoom={zoom}")
    if not 0.0 <= rotation_deg <= 180.0:
        raise ValueError(f"rotation_deg must be in [0, 180], got rotation_deg={rotation_deg}")
    return Compose(
        [
            RandomFlip("horizontal", p=0.5),
            FusedAffine(
                [
                    RandomRotation(degrees=(-rotation_deg, rotation_deg)),
                    RandomZoom(scale=(1.0 - zoom, 1.0 + zoom)),
                    RandomTranslate(
                        x=(-shift_fraction, shift_fraction), y=(-shift_fraction, shift_fraction), relative=True
                    ),
                ]
            ),
        ]
    )
