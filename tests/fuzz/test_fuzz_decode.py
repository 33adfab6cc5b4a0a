"""A bounded mutation run over real image bytes through the decoder (fixed seed, a few hundred cases).

Real BMP (C-NMC), JPEG (PBC), RGBA TIFF (AML) files and a real cell re-encoded as PNG get random byte
flips, inserts, deletions and cuts, biased towards the header. Invariant: ``read_image`` returns an
H x W x 3 uint8 array or raises ``ImageReadError`` naming the file, never anything else, never crashes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from blastscope.data.decode import ImageReadError, read_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about damaged TIFF tags; expected here

CASES_PER_FORMAT = 150
SEED = 9


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not b:
            break
        end = len(b) if rng.random() < 0.3 else min(len(b), 512)  # mostly the header, where parsers branch
        pos = int(rng.integers(0, end))
        op = int(rng.integers(0, 5))
        if op == 0:
            b[pos] = int(rng.integers(0, 256))
        elif op == 1:
            b[pos] ^= 1 << int(rng.integers(0, 8))
        elif op == 2:
            b[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        elif op == 3:
            del b[pos : pos + int(rng.integers(1, 64))]
        else:
            b[pos : pos + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"])
    return bytes(b)


@pytest.fixture(scope="module")
def originals(shared) -> dict[str, bytes]:
    jpg = sorted(shared("pbc-sample").rglob("*.jpg"))[0]
    ok, png = cv2.imencode(".png", cv2.imread(str(jpg)))
    assert ok
    return {
        "bmp": sorted(shared("cnmc-samples", "labeled").glob("*.bmp"))[0].read_bytes(),
        "jpg": jpg.read_bytes(),
        "tiff": sorted(shared("aml-cytomorphology-sample", "MYO").glob("*.tiff"))[0].read_bytes(),
        "png": png.tobytes(),
    }


@pytest.mark.parametrize("kind", ["bmp", "jpg", "tiff", "png"])
def test_mutated_real_files_decode_or_raise_image_read_error(tmp_path, originals, kind):
    rng = np.random.default_rng([SEED, ["bmp", "jpg", "tiff", "png"].index(kind)])
    path: Path = tmp_path / f"mutant.{kind}"
    outcomes = {"decoded": 0, "refused": 0}
    for case in range(CASES_PER_FORMAT):
        path.write_bytes(_mutate(originals[kind], rng))
        try:
            image = read_image(path)
        except ImageReadError as e:
            assert e.path == str(path) and e.reason, case
            outcomes["refused"] += 1
            continue
        except Exception as e:  # noqa: BLE001 - the point of the test
            kept = tmp_path.parent / f"escaped_{kind}_{case}.bin"
            kept.write_bytes(path.read_bytes())
            pytest.fail(f"case {case}: {type(e).__name__}: {e} (mutant kept at {kept})")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 1, case
        assert image.flags.c_contiguous
        outcomes["decoded"] += 1
    assert outcomes["refused"] > 0  # the mutations do reach the parsers
