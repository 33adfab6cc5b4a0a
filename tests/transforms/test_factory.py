"""Named training transforms: ``leukemianet_pca`` (LeukemiaNet Dataset 2 on the fly) and fitting."""
from __future__ import annotations

import numpy as np
import pytest

from blastscope.transforms.factory import TRANSFORMS, FittedChoice, build_transform
from blastscope.transforms.pca_colour import PCAColourAugment


def _images(seed: int = 0, n: int = 6, size: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    images[:, :4] = 0  # a black border, left out of the PCA
    return images


def test_leukemianet_pca_is_fitted_on_the_given_images():
    images = _images()
    transform = build_transform("leukemianet_pca", images)
    pca = transform._items[-1]
    assert isinstance(pca, PCAColourAugment) and len(transform._items) == 11
    pixels = images.reshape(-1, 3)
    pixels = pixels[(pixels > 0).any(axis=1)].astype(np.float64)  # 0-255 grey levels, as AlexNet
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False))
    np.testing.assert_allclose(pca.eigenvalues_, values[::-1], rtol=1e-8)
    np.testing.assert_allclose(np.abs(pca.eigenvectors_), np.abs(vectors[:, ::-1]), atol=1e-8)


def test_leukemianet_pca_needs_training_images():
    with pytest.raises(ValueError, match="must be fitted"):
        build_transform("leukemianet_pca")


def test_leukemianet_pca_is_reproducible_and_keeps_shape():
    images = _images()
    transform = build_transform("leukemianet_pca", images)
    for seed in range(15):
        out1 = transform(images[1], np.random.default_rng(seed))
        out2 = transform(images[1], np.random.default_rng(seed))
        assert out1.dtype == np.uint8 and out1.shape == images[1].shape
        np.testing.assert_array_equal(out1, out2)


def test_each_draw_applies_exactly_one_augmentation():
    """Invariant: with one member chosen per call, every output equals one member's output under the same rng."""
    images = _images()
    transform = build_transform("leukemianet_pca", images)
    chosen = set()
    for seed in range(60):
        out = transform(images[2], np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        index = int(rng.choice(len(transform._items)))
        np.testing.assert_array_equal(out, transform._items[index](images[2], rng))
        chosen.add(index)
    assert 10 in chosen  # the PCA colour shift is among the choices


def test_fitted_choice_fits_only_members_with_a_fit_method():
    class Recorder:
        def __init__(self):
            self.fitted = None

        def fit(self, images):
            self.fitted = len(images)
            return self

        def __call__(self, image, rng):
            return image

    class FlagOnly:  # like RandomRotation, whose ``fit`` is a bool option
        fit = True

        def __call__(self, image, rng):
            return image

    recorder = Recorder()
    choice = FittedChoice([recorder, FlagOnly()]).fit(_images(n=4))
    assert recorder.fitted == 4 and isinstance(choice, FittedChoice)


def test_names_are_registered():
    assert {"sdct", "leukemianet", "leukemianet_pca", "none"} <= set(TRANSFORMS)
    assert build_transform("none") is None
