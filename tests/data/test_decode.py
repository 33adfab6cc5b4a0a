"""Decoding real files of every supported kind, and clear errors for bad ones."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from blastscope.data.decode import ImageReadError, read_image


def test_cnmc_bmp_matches_pillow(cnmc_samples):
    path = sorted(cnmc_samples.glob("*.bmp"))[0]
    ours = read_image(path)
    ref = np.asarray(Image.open(path).convert("RGB"))
    assert ours.dtype == np.uint8 and ours.shape == (450, 450, 3)
    np.testing.assert_array_equal(ours, ref)


def test_rgba_tiff_has_three_channels_matching_pillow(shared):
    path = sorted(shared("aml-cytomorphology-sample", "MYO").glob("*.tiff"))[0]
    ours = read_image(path)
    rgba = np.asarray(Image.open(path).convert("RGBA")).astype(np.uint16)
    expected = (rgba[..., :3] * rgba[..., 3:4] // 255).astype(np.uint8)
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def test_jpeg_close_to_pillow(shared):
    path = sorted(shared("pbc-sample").rglob("*.jpg"))[0]
    ours = read_image(path).astype(int)
    ref = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(ours - ref).mean() < 2.0  # different JPEG decoders differ by rounding only


def test_grayscale_16bit_and_palette(tmp_path):
    gray = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (64, 64, 3) and (out[..., 0] == gray).all() and (out[..., 2] == gray).all()
    deep = (gray.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png")[..., 0], gray)
    Image.fromarray(np.stack([gray] * 3, -1)).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (64, 64, 3)


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"this is not an image at all" * 10, "not a decodable image")])
def test_bad_bytes_name_the_file(tmp_path, content, reason):
    path = tmp_path / "UID_1_1_1_all.bmp"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert str(path) in str(err.value) and reason in err.value.reason


def test_truncated_real_bmp_is_refused(tmp_path, cnmc_samples):
    src = sorted(cnmc_samples.glob("*.bmp"))[0]
    cut = tmp_path / "cut.bmp"
    cut.write_bytes(src.read_bytes()[:2000])
    with pytest.raises(ImageReadError, match="cut.bmp"):
        read_image(cut)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.bmp")


def test_pixel_limit_refuses_before_decoding(tmp_path, cnmc_samples):
    src = sorted(cnmc_samples.glob("*.bmp"))[0]
    shutil.copy(src, tmp_path / "a.bmp")
    with pytest.raises(ImageReadError, match="exceeds the limit"):
        read_image(tmp_path / "a.bmp", max_pixels=1000)
