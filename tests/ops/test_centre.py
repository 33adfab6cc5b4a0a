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


def _numpy_centroid(image: np.ndarray, threshold: int) -> tuple[float, float]:
    """The definition, written plainly: mean (row, col) of pixels whose channel maximum exceeds threshold."""
    peak = image if image.ndim == 2 else image.max(axis=2)
    rows, cols = np.nonzero(peak > threshold)
    if len(rows) == 0:
        return ((image.shape[0] - 1) / 2.0, (image.shape[1] - 1) / 2.0)
    return (float(rows.mean()), float(cols.mean()))


@pytest.mark.parametrize("threshold", [0, 1, 40, 254])
@pytest.mark.parametrize("seed", range(4))
def test_centroid_fast_path_equals_the_definition(threshold, seed):
    """The OpenCV route (uint8) gives the centroid of the mask from the definition, in every layout."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 90, size=2)
    image = (rng.random((h, w, 3)) < 0.3) * rng.integers(0, 256, (h, w, 3))
    image = image.astype(np.uint8)
    for img in (image, image[:, :, 1].copy(), np.ascontiguousarray(image[::2, ::-1])):
        assert cell_centroid(img, threshold) == pytest.approx(_numpy_centroid(img, threshold), abs=1e-9)
    as_float = image.astype(np.float32)  # the NumPy route gives the same answer
    assert cell_centroid(as_float, threshold) == pytest.approx(cell_centroid(image, threshold), abs=1e-9)


def test_real_cell_centroid_equals_the_definition(cnmc_samples):
    for path in sorted(cnmc_samples.glob("*.bmp"))[:4]:
        image = read_image(path)
        assert cell_centroid(image) == pytest.approx(_numpy_centroid(image, 0), abs=1e-9)
