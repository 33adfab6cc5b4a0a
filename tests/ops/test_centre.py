"""Centring a cell on a square canvas (Gehlot et al. 2020, section 2)."""
from __future__ import annotations

import numpy as np
import pytest

from blastscope.data.decode import read_image
from blastscope.data.preprocess import Preprocess
from blastscope.ops.centre import cell_centroid, centre_on_canvas


def test_centroid_moves_to_centre_and_pixels_are_preserved():
    image = np.zeros((100, 120, 3), np.uint8)
    image[10:20, 80:100] = 200  # an off-centre "cell"
    out = centre_on_canvas(image, 51)
    cy, cx = cell_centroid(out)
    assert abs(cy - 25) <= 0.5 and abs(cx - 25) <= 0.5
    assert (out > 0).sum() == (image > 0).sum()  # nothing cropped away, nothing invented


def test_crop_when_canvas_smaller_than_cell():
    image = np.full((60, 60, 3), 7, np.uint8)
    out = centre_on_canvas(image, 20)
    assert out.shape == (20, 20, 3) and (out == 7).all()


def test_empty_image_is_centred_geometrically():
    out = centre_on_canvas(np.zeros((10, 10, 3), np.uint8), 4)
    assert out.shape == (4, 4, 3) and not out.any()


def test_real_cell_centroid_within_half_pixel(cnmc_samples):
    for path in sorted(cnmc_samples.glob("*.bmp"))[:3]:
        out = Preprocess(canvas=350)(read_image(path))
        cy, cx = cell_centroid(out)
        assert out.shape == (350, 350, 3)
        assert abs(cy - 174.5) <= 0.5 and abs(cx - 174.5) <= 0.5


def test_resize_and_validation():
    image = np.zeros((90, 90, 3), np.uint8)
    image[30:60, 30:60] = 255
    assert Preprocess(canvas=80, resize=40)(image).shape == (40, 40, 3)
    with pytest.raises(ValueError, match="canvas must be >= 8"):
        Preprocess(canvas=2)
