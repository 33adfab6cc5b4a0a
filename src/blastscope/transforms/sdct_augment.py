"""Training augmentation of SDCT-AuxNet-theta (Gehlot, Gupta & Gupta, Medical Image Analysis 2020).

Paper, section 4.3: shear in [-20, 20] degrees, random rotation, horizontal and vertical flips and
Gaussian blur with sigma in [0.0, 0.75], chosen to mimic slide preparation (cells sheared
between glass slides), random orientation and manual focusing. The released code applies, in
this order: horizontal flip (p=0.5), vertical flip (p=0.5), affine shear of up to 20 degrees
with p=0.5, Gaussian blur with sigma ~ U(0, 0.75) with p=0.2, rotation uniform in [0, 360).

Deliberate differences and choices:
- The shear is along x only, like a torchvision ``RandomAffine(shear=20)``; it acts about the
  image centre and the uncovered area is black (the C-NMC background).
- Each geometric step interpolates separately, as a chain of torchvision transforms does.
- The centre crop (350 of 450 pixels) and the oversampling of the minority class belong to the
  data pipeline, not to this transform.
"""
from __future__ import annotations

from blastscope.transforms.compose import Compose, RandomApply
from blastscope.transforms.geometric import RandomFlip, RandomRotation, RandomShear
from blastscope.transforms.photometric import RandomGaussianBlur

__all__ = ["sdct_train_transform"]


def sdct_train_transform(
    shear_deg: float = 20.0,
    shear_p: float = 0.5,
    blur_sigma: tuple[float, float] = (0.0, 0.75),
    blur_p: float = 0.2,
    rotation_deg: tuple[float, float] = (0.0, 360.0),
) -> Compose:
    """The SDCT-AuxNet-theta training transform (defaults are the paper's / released code's values).

    Returns:
        a :class:`Compose` mapping uint8 H x W x 3 RGB to the same shape.
    """
    if not 0.0 <= shear_deg < 90.0:
        raise ValueError(f"shear_deg must be in [0, 90), got shear_deg={shear_deg}")
    return Compose(
        [
            RandomFlip("horizontal", p=0.5),
            RandomFlip("vertical", p=0.5),
            RandomApply(RandomShear(x_deg=(-shear_deg, shear_deg)), p=shear_p),
            RandomApply(RandomGaussianBlur(sigma=blur_sigma), p=blur_p),
            RandomRotation(degrees=rotation_deg),
        ]
    )
