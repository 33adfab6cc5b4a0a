"""The built-in synthetic C-NMC generator."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score

from blastscope.data.decode import read_image
from blastscope.data.readers import read_dataset
from blastscope.data.synth import SynthConfig, _make_subject, generate_cell, write_synthetic_cnmc


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(tmp_path):
    cfg = SynthConfig(train_subjects=3, validation_subjects=1, test_subjects=1, cells_per_subject=(2, 3), size=200, seed=5)
    write_synthetic_cnmc(tmp_path / "a", cfg)
    write_synthetic_cnmc(tmp_path / "b", cfg)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    from dataclasses import replace

    write_synthetic_cnmc(tmp_path / "c", replace(cfg, seed=6))
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_layout_and_images(tiny_synthetic):
    index = read_dataset(tiny_synthetic)
    train = index[index.split == "train"]
    assert train.groupby("subject_id")["label"].nunique().max() == 1  # a subject's cells share its class
    assert train.groupby("subject_id")["fold"].nunique().max() == 1
    image = read_image(train.path.iloc[0])
    assert image.shape == (450, 450, 3)
    assert (image[0, 0] == 0).all() and (image.max(axis=2) > 0).mean() > 0.1  # black background, a cell


def test_three_class_option(tmp_path):
    cfg = SynthConfig(train_subjects=3, validation_subjects=1, test_subjects=1, cells_per_subject=(2, 2), size=200, classes=("all", "hem", "aml"))
    write_synthetic_cnmc(tmp_path, cfg)
    index = read_dataset(tmp_path)
    assert set(index[index.split == "train"].label) == {"all", "hem", "aml"}


@pytest.mark.parametrize("bad", [dict(signal=1.5), dict(train_subjects=2, folds=3), dict(classes=("all",)), dict(cells_per_subject=(3, 2))])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        SynthConfig(**bad)


def _texture_features(image):
    """Radial power spectrum of the grey cell (8 bands) + mean colour: a crude texture descriptor."""
    gray = image.mean(axis=2)
    spec = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean()))) ** 2
    n = gray.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    r = np.sqrt(yy**2 + xx**2) / (n / 2)
    bands = [np.log(spec[(r >= lo) & (r < lo + 0.08)].mean() + 1) for lo in np.arange(0.02, 0.66, 0.08)]
    cell = image[image.max(axis=2) > 0]
    return np.array(bands + list(cell.mean(0) / 255))


def _cells(signal, seed=0, subjects=6, cells=8):
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    for label in ("all", "hem"):
        for s in range(subjects):
            subject = _make_subject(label, s, rng)
            for _ in range(cells):
                X.append(_texture_features(generate_cell(subject, signal, 200, rng)))
                y.append(label == "all")
                g.append(f"{label}{s}")
    return np.array(X), np.array(y), np.array(g)


def test_class_signal_lives_in_texture_and_scales_with_signal():
    """Invariant: with signal=0 the classes are indistinguishable; with signal=1 texture separates them."""
    model = LogisticRegression(max_iter=2000)
    X1, y1, g1 = _cells(1.0, seed=1)
    X0, y0, g0 = _cells(0.0, seed=1)
    strong = cross_val_score(model, X1, y1, groups=g1, cv=GroupKFold(4)).mean()
    none = cross_val_score(model, X0, y0, groups=g0, cv=GroupKFold(4)).mean()
    assert strong > 0.85
    assert none < 0.7


def test_subject_level_split_is_harder_than_image_level():
    """Invariant: subjects carry their own look, so an image-level split (which puts a subject's
    cells on both sides) scores higher than the honest subject-level split."""
    X, y, g = _cells(0.0, seed=1)
    model = LogisticRegression(max_iter=2000, C=10.0)
    subject_level = cross_val_score(model, X, y, groups=g, cv=GroupKFold(4)).mean()
    image_level = cross_val_score(model, X, y, cv=StratifiedKFold(4, shuffle=True, random_state=0)).mean()
    assert image_level > subject_level + 0.1
