"""Decode any supported image file to RGB uint8, or fail with the file and the reason.

BMP, TIFF (including RGBA and 16-bit), JPEG and PNG are decoded with OpenCV from the file's bytes.
The pixel count is read from the header first (Pillow, which does not decode the pixels) so a
decompression bomb is refused before any memory is spent on it.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["ImageReadError", "read_image", "IMAGE_SUFFIXES", "MAX_PIXELS"]

IMAGE_SUFFIXES = (".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".png")
MAX_PIXELS = 50_000_000


class ImageReadError(ValueError):
    """An image file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _header_size(path: Path, data: bytes) -> tuple[int, int] | None:
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, with a clearer message
    try:
        with Image.open(BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def read_image(path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return the image at ``path`` as an H x W x 3 RGB uint8 array.

    Grayscale is replicated to three channels, an alpha channel is dropped (cells are composited
    over black where alpha is 0), 16-bit images are scaled to 8 bits. Raises :class:`ImageReadError`
    naming the file for missing, empty, truncated, non-image or oversized files.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot read file ({e.strerror})") from None
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    size = _header_size(path, data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageReadError(path, f"image of {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        reason = "not a decodable image" if size is None else "truncated or corrupt image data"
        raise ImageReadError(path, reason)
    if size is None or image.shape[0] * image.shape[1] == 0:
        raise ImageReadError(path, "not a decodable image")
    return _to_rgb8(image, path)


def _to_rgb8(image: np.ndarray, path: Path) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
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
