"""Bad and unusual image files on disk: every one is decoded correctly or refused with the file and the reason.

Real sample files (C-NMC BMP, AML RGBA TIFF, PBC JPEG) are cut, overwritten and re-encoded; the
expected pixels of unusual modes come from Pillow or from arithmetic written out in the test.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import blastscope.data.decode as decode
from blastscope.data.decode import ImageReadError, read_image
from blastscope.data.preprocess import Preprocess
from blastscope.ops.centre import cell_centroid


@pytest.fixture(scope="module")
def real_files(shared) -> dict[str, Path]:
    """One real file per format; PNG is a real cell re-encoded (the shared data has no PNG)."""
    files = {
        "bmp": sorted(shared("cnmc-samples", "labeled").glob("*.bmp"))[0],
        "tiff": sorted(shared("aml-cytomorphology-sample", "MYO").glob("*.tiff"))[0],
        "jpg": sorted(shared("pbc-sample").rglob("*.jpg"))[0],
    }
    return files


def _real_bytes(real_files: dict[str, Path], kind: str) -> bytes:
    if kind == "png":
        ok, png = cv2.imencode(".png", cv2.imread(str(real_files["jpg"])))
        assert ok
        return png.tobytes()
    return real_files[kind].read_bytes()


def _refused(path: Path, *reason_parts: str) -> ImageReadError:
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    for part in reason_parts:
        assert part in err.value.reason, err.value.reason
    return err.value


@pytest.mark.parametrize("suffix", [".bmp", ".tiff", ".jpg", ".png"])
def test_zero_byte_file(tmp_path, suffix):
    path = tmp_path / f"UID_1_1_1_all{suffix}"
    path.write_bytes(b"")
    _refused(path, "empty file")


@pytest.mark.parametrize("kind", ["bmp", "tiff", "jpg", "png"])
@pytest.mark.parametrize("keep", [0.02, 0.5, 0.9, 0.999, -1])
def test_truncated_real_files_are_refused(tmp_path, real_files, kind, keep):
    """Invariant: a real file cut anywhere (header, middle, last byte) is refused, never half-decoded."""
    data = _real_bytes(real_files, kind)
    n = len(data) - 1 if keep == -1 else max(1, int(len(data) * keep))
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(data[:n])
    _refused(path)


@pytest.mark.parametrize("content", [
    b"this is not an image at all\n" * 40,
    b"%PDF-1.4\n" + bytes(range(256)) * 8,
    bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
    b"BM" + b"\x00" * 60,  # a BMP signature and nothing that makes sense after it
])
def test_non_image_bytes_with_an_image_extension(tmp_path, content):
    path = tmp_path / "UID_2_1_1_hem.bmp"
    path.write_bytes(content)
    _refused(path)


def test_other_formats_are_refused_by_content_and_the_extension_does_not_matter(tmp_path, real_files):
    rgb = read_image(real_files["jpg"])
    Image.fromarray(rgb).save(tmp_path / "gif_named.bmp", format="GIF")
    _refused(tmp_path / "gif_named.bmp", "unsupported image format GIF")
    Image.fromarray(rgb).save(tmp_path / "png_named.bmp", format="PNG")
    np.testing.assert_array_equal(read_image(tmp_path / "png_named.bmp"), rgb)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PNG"])
def test_grayscale_palette_and_one_bit_match_pillow(tmp_path, real_files, fmt):
    rgb = read_image(real_files["bmp"])[100:300, 100:300]
    for mode in ("L", "P", "1"):
        path = tmp_path / f"{mode}.{fmt.lower()}"
        Image.fromarray(rgb).convert(mode).save(path, format=fmt)
        expected = np.asarray(Image.open(path).convert("RGB"))
        ours = read_image(path)
        assert ours.shape == expected.shape and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, expected, err_msg=f"{mode} {fmt}")


def test_grayscale_jpeg_replicates_the_channel(tmp_path, real_files):
    gray = np.asarray(Image.open(real_files["jpg"]).convert("L"))
    Image.fromarray(gray).save(tmp_path / "g.jpg", quality=95)
    ours = read_image(tmp_path / "g.jpg")
    assert ours.shape == gray.shape + (3,)
    assert (ours[..., 0] == ours[..., 1]).all() and (ours[..., 1] == ours[..., 2]).all()
    assert np.abs(ours[..., 0].astype(int) - gray).mean() < 2.0


def test_rgba_and_gray_alpha_are_composited_over_black(tmp_path, real_files):
    rgb = read_image(real_files["bmp"])[100:228, 100:228]
    alpha = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    expected = (rgb.astype(np.uint16) * alpha[..., None] // 255).astype(np.uint8)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), expected)
    gray = rgb[..., 1]
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    expected = (gray.astype(np.uint16) * alpha // 255).astype(np.uint8)
    ours = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(ours, np.repeat(expected[..., None], 3, axis=2))


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16_bit_gray_and_colour_scale_to_8_bits(tmp_path, suffix):
    rng = np.random.default_rng(3)
    deep = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    expected = np.floor(deep.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)
    cv2.imwrite(str(tmp_path / f"c{suffix}"), deep[..., ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_image(tmp_path / f"c{suffix}"), expected)
    cv2.imwrite(str(tmp_path / f"g{suffix}"), deep[..., 0])
    np.testing.assert_array_equal(read_image(tmp_path / f"g{suffix}")[..., 2], expected[..., 0])


def test_cmyk_tiff_matches_pillow(tmp_path, real_files):
    Image.open(real_files["jpg"]).convert("CMYK").save(tmp_path / "c.tiff")
    expected = np.asarray(Image.open(tmp_path / "c.tiff").convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "c.tiff"), expected)


@pytest.mark.parametrize("shape", [(40, 30), (1, 1), (5, 60)])
def test_images_smaller_than_the_canvas_are_padded_not_cropped(tmp_path, real_files, shape):
    """Invariant: centring a cell smaller than the canvas keeps every pixel and puts its centroid in the middle."""
    cell = cv2.resize(read_image(real_files["bmp"]), shape[::-1], interpolation=cv2.INTER_AREA)
    cell[cell == 0] = 1  # every pixel is cell, so the centroid is the image centre
    cv2.imwrite(str(tmp_path / "small.png"), cell[..., ::-1])
    out = Preprocess(canvas=64)(read_image(tmp_path / "small.png"))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert int(out.astype(np.int64).sum()) == int(cell.astype(np.int64).sum())
    assert (out.max(axis=2) > 0).sum() == shape[0] * shape[1]
    cy, cx = cell_centroid(out)
    assert abs(cy - 31.5) <= 0.5 and abs(cx - 31.5) <= 0.5
    assert Preprocess(canvas=64, resize=32)(read_image(tmp_path / "small.png")).shape == (32, 32, 3)


# ---- decompression bombs: refused from the header, before any pixel is decoded --------------------
def _bmp_header(width: int, height: int) -> bytes:
    """A 54-byte BMP (BITMAPINFOHEADER, 24 bits) whose header claims width x height and holds no pixels."""
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(width: int, height: int) -> bytes:
    """A real, valid 8-bit gray PNG of width x height zeros: ~1000x smaller than its pixels."""
    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


@pytest.fixture
def no_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called for a file the header check should refuse")

    monkeypatch.setattr(decode.cv2, "imdecode", fail)


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (30_000, 30_000), (8_000, 8_000)])
def test_absurd_bmp_dimensions_are_refused_before_decoding(tmp_path, no_decoding, width, height):
    path = tmp_path / "bomb.bmp"
    path.write_bytes(_bmp_header(width, height))
    assert path.stat().st_size == 54
    _refused(path, "exceeds the limit of 50000000 pixels")


def test_absurd_png_header_is_refused_before_decoding(tmp_path, no_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                     + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))
    _refused(path, "exceeds the limit")


def test_real_png_decompression_bomb_is_refused_before_decoding(tmp_path, no_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bomb(8000, 8000))  # 64 million pixels in a file of ~70 kB
    assert path.stat().st_size < 200_000
    _refused(path, "8000x8000", "exceeds the limit of 50000000 pixels")


def test_the_same_bomb_decodes_under_a_higher_limit(tmp_path):
    """The limit is what refuses the file above, not a decoding failure."""
    path = tmp_path / "small_bomb.png"
    path.write_bytes(_png_bomb(300, 200))
    with pytest.raises(ImageReadError, match="exceeds the limit of 50000"):
        read_image(path, max_pixels=50_000)
    image = read_image(path, max_pixels=60_000)
    assert image.shape == (200, 300, 3) and not image.any()


def test_zero_sized_header(tmp_path, no_decoding):
    path = tmp_path / "empty.bmp"
    path.write_bytes(_bmp_header(0, 10))
    _refused(path)


def test_opencv_prints_nothing_of_its_own_for_a_corrupt_file(tmp_path):
    """Only the file name and the reason reach the user: OpenCV's own "[ERROR:...] loadsave.cpp" lines
    (which it writes to stderr from C++) are silenced. Checked in a fresh process, on a cut real BMP."""
    import subprocess
    import sys

    samples = sorted((Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled").glob("*.bmp"))
    if not samples:
        pytest.skip("real C-NMC sample cells not found under ../shared/data/cnmc-samples")
    cut = tmp_path / "cut.bmp"
    cut.write_bytes(samples[0].read_bytes()[:2000])
    code = ("import sys; from blastscope.data.decode import read_image\n"
            "try:\n    read_image(sys.argv[1])\nexcept Exception as e:\n    print('failed:', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(cut)], capture_output=True, text=True, timeout=120)
    assert "failed:" in done.stdout and "truncated or corrupt" in done.stdout
    assert "[ERROR" not in done.stderr and "loadsave" not in done.stderr, done.stderr
