"""Decode any supported image file to RGB uint8, or fail with the file and the reason.

BMP, TIFF (including RGBA and 16-bit), JPEG and PNG are decoded with OpenCV from the file's bytes.
Before any pixel is decoded the header is read with Pillow (which does not decode the pixels):

- the format must be one of BMP, TIFF, JPEG (or MPO, multi-picture JPEG) and PNG, judged by the
  bytes, never by the file extension, so OpenCV's other decoders are never reached;
- the pixel count must be at most ``max_pixels``, so a decompression bomb (a small file whose
  header claims e.g. 100000 x 100000 pixels) is refused before any memory is spent on it;
- a header Pillow cannot read is refused ("not a decodable image"; this includes the rare
  3-channel floating-point TIFF, which Pillow does not read).

After decoding, the decoded size must match the header (anything else is a corrupt file).
Every failure is an :class:`ImageReadError` naming the file and the reason; no other exception
type leaves :func:`read_image` for any content of the file.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# OpenCV prints its own "[ERROR:0@...] loadsave.cpp" lines for bad data; every failure is reported
# here with the file name and the reason instead, so OpenCV's logger is silenced.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

__all__ = ["ImageReadError", "UnreadableImagesError", "read_image", "decode_image", "IMAGE_SUFFIXES", "IMAGE_FORMATS",
           "MAX_PIXELS"]

IMAGE_SUFFIXES = (".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".png")
IMAGE_FORMATS = ("BMP", "TIFF", "JPEG", "MPO", "PNG")
"""Pillow format names accepted (judged from the bytes)."""
MAX_PIXELS = 50_000_000


class ImageReadError(ValueError):
    """An image file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UnreadableImagesError(ValueError):
    """Several image files that cannot be used; ``errors`` lists every one (path and reason)."""

    def __init__(self, errors: list[ImageReadError], hint: str = ""):
        self.errors = list(errors)
        lines = "".join(f"\n  {e.path}: {e.reason}" for e in self.errors)
        super().__init__(f"{len(self.errors)} image file(s) cannot be read{f' ({hint})' if hint else ''}:{lines}")


_SIGNATURES = (("BMP", b"BM"), ("TIFF", b"II*\x00"), ("TIFF", b"MM\x00*"), ("JPEG", b"\xff\xd8"), ("PNG", b"\x89PNG"))


def _header(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) from the header, without decoding pixels; ValueError with the reason."""
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(data)) as im:
            return str(im.format), int(im.size[0]), int(im.size[1])
    except UnidentifiedImageError:
        kind = next((k for k, magic in _SIGNATURES if data.startswith(magic)), None)
        what = f"a {kind} signature, but the header is truncated, damaged or of a variant Pillow does not read" if kind \
            else "the bytes are not BMP, TIFF, JPEG or PNG"
        raise ValueError(f"not a decodable image ({what})") from None
    except Image.DecompressionBombError as e:  # Pillow's own, larger limit
        raise ValueError(f"image exceeds the limit of {max_pixels} pixels (Pillow: {e})") from None
    except Exception as e:  # noqa: BLE001 - Pillow's parsers raise many types (struct.error, KeyError, ...) on damaged headers
        raise ValueError(f"unreadable image header ({type(e).__name__}: {e})") from None


def read_image(path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return the image at ``path`` as an H x W x 3 RGB uint8 array.

    Grayscale (and 1-bit) is replicated to three channels, palette and CMYK images are converted,
    an alpha channel is applied by compositing over black (``rgb * alpha // 255``), 16-bit images
    are scaled to 8 bits (``v * 255 / 65535``, rounded). Raises :class:`ImageReadError` naming the
    file for missing, empty, truncated, corrupt, non-image, unsupported or oversized files (more
    than ``max_pixels`` pixels by the header; Pillow's own bomb limit, about 179 million pixels,
    also applies, so a higher ``max_pixels`` has no effect beyond it).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot read file ({e.strerror})") from None
    return decode_image(data, path, max_pixels)


def decode_image(data: bytes, path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`read_image` for bytes already in memory (an upload); ``path`` names them in errors."""
    path = Path(path)
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        kind, width, height = _header(data, max_pixels)
    except ValueError as e:
        raise ImageReadError(path, str(e)) from None
    if kind not in IMAGE_FORMATS:
        raise ImageReadError(path, f"unsupported image format {kind} (supported: BMP, TIFF, JPEG, PNG)")
    if width * height > max_pixels:
        raise ImageReadError(path, f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    if width * height == 0:
        raise ImageReadError(path, f"image of {width}x{height} pixels has no pixels")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ImageReadError(path, f"corrupt image data ({str(e).strip().splitlines()[-1]})") from None
    if image is None:
        raise ImageReadError(path, "truncated or corrupt image data")
    if image.ndim not in (2, 3) or image.shape[0] * image.shape[1] != width * height:
        shape = "x".join(map(str, image.shape))
        raise ImageReadError(path, f"corrupt image: the header says {width}x{height} pixels, the data decodes to {shape}")
    return _to_rgb8(image, path)


def _to_rgb8(image: np.ndarray, path: Path) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageReadError(path, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    channels = image.shape[2]
    if channels == 4:
        alpha = image[:, :, 3:4].astype(np.uint16)
        bgr = (image[:, :, :3].astype(np.uint16) * alpha // 255).astype(np.uint8)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    raise ImageReadError(path, f"unsupported channel count {channels}")
