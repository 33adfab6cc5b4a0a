"""Tests for offline dataset expansion, with real files on disk under tmp_path."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from blastscope.transforms.conventional import CONVENTIONAL_AUGMENTATIONS, leukemianet_conventional_augmentations
from blastscope.transforms.expand import expand_dataset
from blastscope.transforms.pca_colour import PCAColourAugment
from blastscope.transforms.sdct_augment import sdct_train_transform

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write_sources(root: Path) -> list[tuple[Path, str]]:
    """Three small colour PNGs in two classes (sizes differ), written with OpenCV as BGR."""
    rng = np.random.default_rng(0)
    items = []
    for index, (label, size) in enumerate([("ALL", 40), ("ALL", 48), ("normal", 36)]):
        rgb = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
        path = root / "src" / label / f"img{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        items.append((path, label))
    return items


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def test_writes_originals_and_copies_per_class(tmp_path: Path) -> None:
    items = write_sources(tmp_path)
    written = expand_dataset(items, tmp_path / "out", copies=2, transform=sdct_train_transform(), seed=1)
    assert len(written) == 3 * (1 + 2)
    assert sorted(p.name for p in (tmp_path / "out" / "ALL").iterdir()) == sorted(
        f"img{i}_{s}.png" for i in (0, 1) for s in ("orig", "c000", "c001")
    )
    assert sorted(p.name for p in (tmp_path / "out" / "normal").iterdir()) == ["img2_c000.png", "img2_c001.png", "img2_orig.png"]
    for path, label in items:
        original = tmp_path / "out" / label / f"{path.stem}_orig.png"
        np.testing.assert_array_equal(read_rgb(original), read_rgb(path))
        copy = read_rgb(tmp_path / "out" / label / f"{path.stem}_c000.png")
        assert copy.shape == read_rgb(path).shape
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_same_seed_identical_bytes_different_seed_differs(tmp_path: Path) -> None:
    items = write_sources(tmp_path)
    first = expand_dataset(items, tmp_path / "a", copies=3, transform=sdct_train_transform(), seed=7)
    second = expand_dataset(items, tmp_path / "b", copies=3, transform=sdct_train_transform(), seed=7)
    other = expand_dataset(items, tmp_path / "c", copies=3, transform=sdct_train_transform(), seed=8)
    assert read_bytes(first) == read_bytes(second)
    copies_first = [b for p, b in zip(first, read_bytes(first)) if "_orig" not in p.name]
    copies_other = [b for p, b in zip(other, read_bytes(other)) if "_orig" not in p.name]
    assert copies_first != copies_other


def test_output_does_not_depend_on_item_order(tmp_path: Path) -> None:
    """Invariant: each source's copies depend on the seed and its own label/stem only."""
    items = write_sources(tmp_path)
    forward = expand_dataset(items, tmp_path / "f", copies=2, transform=sdct_train_transform(), seed=3)
    backward = expand_dataset(items[::-1], tmp_path / "r", copies=2, transform=sdct_train_transform(), seed=3)
    for path in forward:
        assert path.read_bytes() == (tmp_path / "r" / path.relative_to(tmp_path / "f")).read_bytes()
    assert len(backward) == len(forward)


def test_named_augmentations_and_pca_copies(tmp_path: Path) -> None:
    items = write_sources(tmp_path)
    pca = PCAColourAugment(alpha_std=1.0).fit(read_rgb(p) for p, _ in items)
    written = expand_dataset(
        items, tmp_path / "out", copies=1, transform=leukemianet_conventional_augmentations(), seed=0, pca=pca, pca_copies=2
    )
    assert len(written) == 3 * (1 + len(CONVENTIONAL_AUGMENTATIONS) + 2)
    names = {p.name for p in written if p.name.startswith("img2_")}
    assert {f"img2_c000_{n}.png" for n in CONVENTIONAL_AUGMENTATIONS} <= names
    assert {"img2_orig.png", "img2_pca000.png", "img2_pca001.png"} <= names
    gray = read_rgb(tmp_path / "out" / "normal" / "img2_c000_grayscale.png")
    np.testing.assert_array_equal(gray[:, :, 0], gray[:, :, 1])
    flipped = read_rgb(tmp_path / "out" / "normal" / "img2_c000_reflect_y.png")
    np.testing.assert_array_equal(flipped, read_rgb(items[2][0])[:, ::-1])


def test_real_rgba_tiff_sources(tmp_path: Path) -> None:
    files = sorted((DATA / "aml-cytomorphology-sample").glob("*/*.tiff"))[:2]
    if not files:
        pytest.skip(f"AML sample images not found under {DATA / 'aml-cytomorphology-sample'}")
    items = [(f, f.parent.name) for f in files]
    written = expand_dataset(items, tmp_path / "out", copies=1, transform=sdct_train_transform(), seed=0)
    assert len(written) == 4
    expected = cv2.cvtColor(cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGB)
    np.testing.assert_array_equal(read_rgb(written[0]), expected)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    items = write_sources(tmp_path)
    broken = tmp_path / "src" / "ALL" / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(ValueError, match="broken.png"):
        expand_dataset([(broken, "ALL")], tmp_path / "out", copies=1, transform=sdct_train_transform(), seed=0)
    with pytest.raises(ValueError, match="missing.png"):
        expand_dataset([(tmp_path / "missing.png", "ALL")], tmp_path / "out", copies=1, transform=sdct_train_transform(), seed=0)
    duplicate = tmp_path / "elsewhere" / "img0.png"
    duplicate.parent.mkdir()
    duplicate.write_bytes(items[0][0].read_bytes())
    with pytest.raises(ValueError, match="img0"):
        expand_dataset([items[0], (duplicate, "ALL")], tmp_path / "out", copies=1, transform=sdct_train_transform(), seed=0)
    with pytest.raises(ValueError, match="fitted"):
        expand_dataset(items, tmp_path / "out", copies=1, transform=sdct_train_transform(), seed=0, pca=PCAColourAugment())
    with pytest.raises(ValueError, match="copies=-1"):
        expand_dataset(items, tmp_path / "out", copies=-1, transform=sdct_train_transform(), seed=0)
    with pytest.raises(ValueError, match="label"):
        expand_dataset([(items[0][0], "../up")], tmp_path / "out", copies=1, transform=sdct_train_transform(), seed=0)
