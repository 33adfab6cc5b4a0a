"""Tests for blastscope.ops.stain (Macenko estimate, Ruifrok-Johnston default, inverse)."""
from pathlib import Path

import numpy as np
import pytest

from blastscope.ops.stain import default_stain_matrix, inverse_stain_matrix, macenko_stain_matrix

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CNMC = DATA / "cnmc-samples" / "labeled"

H_STAIN = np.array([0.65, 0.70, 0.29])
E_STAIN = np.array([0.07, 0.99, 0.11])


def _synthetic_two_stain_image(rng: np.random.Generator, n: int = 3000) -> np.ndarray:
    """Beer-Lambert image: one third pure H, one third pure E, one third mixtures (float RGB)."""
    stains = np.stack([H_STAIN / np.linalg.norm(H_STAIN), E_STAIN / np.linalg.norm(E_STAIN)])
    c = rng.uniform(0.3, 1.5, size=(n, 2))
    c[: n // 3, 1] = 0.0
    c[n // 3 : 2 * n // 3, 0] = 0.0
    od = c @ stains
    return (10.0 ** -od).reshape(n // 50, 50, 3)


def test_default_matrix_is_unit_rows_of_ruifrok_johnston():
    m = default_stain_matrix()
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-12)
    skimage_color = pytest.importorskip("skimage.color")
    reference = skimage_color.rgb_from_hed / np.linalg.norm(skimage_color.rgb_from_hed, axis=1, keepdims=True)
    np.testing.assert_allclose(m, reference, atol=1e-12)


def test_inverse_is_skimage_convention():
    """skimage's hed_from_rgb is inv(rgb_from_hed): our inverse of its matrix must equal it."""
    skimage_color = pytest.importorskip("skimage.color")
    np.testing.assert_allclose(inverse_stain_matrix(skimage_color.rgb_from_hed), skimage_color.hed_from_rgb, atol=1e-8)


def test_inverse_recovers_concentrations_by_row_vector_convention():
    """Invariant: od = c @ m  =>  c = od @ inverse_stain_matrix(m)."""
    rng = np.random.default_rng(3)
    m = default_stain_matrix()
    c = rng.uniform(0, 2, size=(10, 3))
    np.testing.assert_allclose((c @ m) @ inverse_stain_matrix(m), c, atol=1e-12)


def test_inverse_rejects_bad_matrices():
    with pytest.raises(ValueError, match="3 x 3"):
        inverse_stain_matrix(np.eye(2))
    with pytest.raises(ValueError, match="singular"):
        inverse_stain_matrix(np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        inverse_stain_matrix(np.full((3, 3), np.nan))


def test_macenko_recovers_known_stains_from_synthetic_image():
    """With pure-stain pixels present, the angle percentiles land on the true stain directions."""
    image = _synthetic_two_stain_image(np.random.default_rng(0))
    m = macenko_stain_matrix(image)
    np.testing.assert_allclose(m[0], H_STAIN / np.linalg.norm(H_STAIN), atol=1e-6)
    np.testing.assert_allclose(m[1], E_STAIN / np.linalg.norm(E_STAIN), atol=1e-6)
    np.testing.assert_allclose(m[2], np.cross(m[0], m[1]) / np.linalg.norm(np.cross(m[0], m[1])), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-12)


def test_macenko_ignores_black_background_and_pools_images():
    """Invariant: zero (background) pixels have OD 0 and are dropped by the OD-norm threshold."""
    image = _synthetic_two_stain_image(np.random.default_rng(1))
    padded = np.zeros((image.shape[0] + 20, image.shape[1], 3))
    padded[10:-10] = image
    np.testing.assert_allclose(macenko_stain_matrix(padded), macenko_stain_matrix(image), atol=1e-10)
    halves = [image[: image.shape[0] // 2], image[image.shape[0] // 2 :]]
    np.testing.assert_allclose(macenko_stain_matrix(halves), macenko_stain_matrix(image), atol=1e-10)


def test_macenko_rejects_blank_images_and_bad_arguments():
    with pytest.raises(ValueError, match="od_threshold"):
        macenko_stain_matrix(np.zeros((5, 5, 3), dtype=np.uint8))
    image = _synthetic_two_stain_image(np.random.default_rng(2))
    with pytest.raises(ValueError, match="percentile"):
        macenko_stain_matrix(image, percentile=40)
    with pytest.raises(ValueError, match="H x W x 3"):
        macenko_stain_matrix([np.zeros((5, 5))])


def test_macenko_on_real_cnmc_cell():
    cv2 = pytest.importorskip("cv2")
    paths = sorted(CNMC.glob("*.bmp"))
    if not paths:
        pytest.skip(f"C-NMC sample cells not found under {CNMC}")
    rgb = cv2.cvtColor(cv2.imread(str(paths[0]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    m = macenko_stain_matrix(rgb)
    assert m.shape == (3, 3) and np.all(np.isfinite(m))
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-12)
    assert m[0, 0] >= m[1, 0] and m[:2].sum(axis=1).min() > 0
    assert abs(np.linalg.det(m)) > 1e-3  # invertible: usable as an SD-layer initialisation


def test_natural_log_od_is_the_log10_estimate_at_a_rescaled_threshold():
    """Invariant: ln OD = ln(10) * log10 OD, and the stain directions are scale-free, so the ln estimate
    at threshold t equals the log10 estimate at t / ln(10), and differs from the log10 one at t on an
    image with faint pixels (two stains, concentrations down to zero, OD noise)."""
    rng = np.random.default_rng(0)
    stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    od = (rng.random((4000, 2)) * [0.6, 0.4]) @ stains + rng.normal(0, 0.02, (4000, 3))
    rgb = (np.clip(10.0 ** -od, 1e-3, 1.0).reshape(40, 100, 3) * 255).round().astype(np.uint8)
    ln = macenko_stain_matrix(rgb, od_threshold=0.15, od_log="ln")
    np.testing.assert_allclose(ln, macenko_stain_matrix(rgb, od_threshold=0.15 / np.log(10.0)), atol=1e-9)
    assert np.abs(ln - macenko_stain_matrix(rgb, od_threshold=0.15)).max() > 0.01
    with pytest.raises(ValueError, match="od_log"):
        macenko_stain_matrix(rgb, od_log="log2")


def test_the_code_recipe_initialises_its_sd_layer_from_the_natural_log_estimate(tiny_synthetic, tmp_path):
    from blastscope.config import resolve_config
    from blastscope.data.readers import read_dataset
    from blastscope.evaluation import cross_validation as cv

    config = resolve_config("sdct_auxnet_code", "quick", ["train.epochs=1", "data.resize=64", "train.max_train_batches=1",
                                                          "data.selection=fold"])
    assert config.arms[0].stain_od == "ln" and resolve_config("sdct_auxnet").arms[0].stain_od == "log10"
    plan = cv.run_cv(config, read_dataset(tiny_synthetic), tmp_path / "run", folds=[0])
    import json

    info = json.loads((tmp_path / "run" / "arms" / "sdct_net" / "fold_1" / "fold.json").read_text())
    images = np.load(next((tmp_path / "run" / "cache").glob("*.npy")), mmap_mode="r")
    first = np.asarray(images[cv.fold_rows(plan, 0).fit[0]])
    np.testing.assert_allclose(info["stain_matrix"], macenko_stain_matrix(first, od_log="ln"), atol=1e-12)


def test_optical_density_np_equals_the_torch_rule():
    import torch

    from blastscope.ops.optical_density import optical_density
    from blastscope.ops.stain import optical_density_np

    x = np.concatenate([np.arange(256) / 255.0, [1e-9, 0.0, 1.0]]).astype(np.float64).reshape(-1, 1)
    np.testing.assert_allclose(optical_density_np(x), optical_density(torch.from_numpy(x)).numpy(), rtol=1e-12, atol=0)
    assert optical_density_np(x)[0, 0] == 0.0 and optical_density_np(x.astype(np.float32)).dtype == np.float32
