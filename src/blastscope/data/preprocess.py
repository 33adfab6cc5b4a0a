"""Preprocessing shared by every model: decode -> centre the cell -> optional resize."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from blastscope.data.decode import read_image
from blastscope.ops.centre import centre_on_canvas

__all__ = ["Preprocess", "load_preprocessed"]


@dataclass(frozen=True)
class Preprocess:
    """How a file becomes a model-ready uint8 image.

    canvas: side of the square canvas the cell centroid is centred on (None: keep the image).
    resize: side the canvas is then resized to (None: no resize), INTER_AREA.
    threshold: pixels with max channel <= threshold count as background when finding the cell.
    """

    canvas: int | None = 350
    resize: int | None = None
    threshold: int = 0

    def __post_init__(self) -> None:
        for name in ("canvas", "resize"):
            value = getattr(self, name)
            if value is not None and value < 8:
                raise ValueError(f"{name} must be >= 8 pixels or None, got {name}={value}")
        if self.canvas is None and self.resize is None:
            return

    @property
    def output_size(self) -> int | None:
        return self.resize or self.canvas

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.canvas is not None:
            image = centre_on_canvas(image, self.canvas, self.threshold)
        if self.resize is not None and image.shape[:2] != (self.resize, self.resize):
            image = cv2.resize(image, (self.resize, self.resize), interpolation=cv2.INTER_AREA)
        elif self.canvas is None and self.resize is None:
            return image
        return np.ascontiguousarray(image)


def load_preprocessed(path: Path | str, preprocess: Preprocess) -> np.ndarray:
    return preprocess(read_image(path))
