"""Tests for blastscope.estimators.pca_reconstruction (Noshad & Fallahi 2021, Sec. 2.2 PCA, Eq. 4)."""
import logging

import numpy as np
import pytest
from safetensors.numpy import load, save
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from blastscope.estimators.pca_reconstruction import PCAReconstruction, TrainZScore


def _data(seed: int = 0, n: int = 60, shape=(1, 6, 7)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 5)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    mixing = rng.normal(size=(5, int(np.prod(shape))))
    return (latent @ mixing + 0.1 * rng.normal(size=(n, mixing.shape[1]))).reshape(n, *shape)


def test_reconstruction_matches_numpy_svd_and_sklearn():
    train, test = _data(0), _data(1, n=10)
    est = PCAReconstruction(n_components=4, svd_solver="full").fit(train)
    got = est.transform(test)
    assert got.shape == test.shape
    flat_train, flat_test = train.reshape(60, -1), test.reshape(10, -1)
    mean = flat_train.mean(axis=0)
    _, _, vt = np.linalg.svd(flat_train - mean, full_matrices=False)
    basis = vt[:4]
    expected = (flat_test - mean) @ basis.T @ basis + mean
    np.testing.assert_allclose(got.reshape(10, -1), expected, atol=1e-9)
    pca = PCA(n_components=4, svd_solver="full").fit(flat_train)
    np.testing.assert_allclose(got.reshape(10, -1), pca.inverse_transform(pca.transform(flat_test)), atol=1e-9)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99, 0.999])
def test_variance_fraction_picks_fewest_components(fraction):
    train = _data(2)
    flat = train.reshape(60, -1)
    singular = np.linalg.svd(flat - flat.mean(axis=0), compute_uv=False)
    ratios = singular**2 / np.sum(singular**2)
    expected = int(np.argmax(np.cumsum(ratios) >= fraction)) + 1
    est = PCAReconstruction(n_components=fraction).fit(train)
    assert est.n_components_ == expected
    assert est.explained_variance_ratio_total_ == pytest.approx(np.cumsum(ratios)[expected - 1])
    assert est.explained_variance_ratio_total_ >= fraction
    assert expected == 1 or np.cumsum(ratios)[expected - 2] < fraction


def test_fraction_one_keeps_all_components():
    est = PCAReconstruction(n_components=1.0).fit(_data(3, n=20))
    assert est.n_components_ == 20
    assert est.explained_variance_ratio_total_ == pytest.approx(1.0)


def test_clamps_n_components_with_warning(caplog):
    train = _data(4, n=12)  # 12 samples x 42 features
    with caplog.at_level(logging.WARNING, logger="blastscope.estimators.pca_reconstruction"):
        est = PCAReconstruction(n_components=500).fit(train)
    assert est.n_components_ == 12
    assert "n_components=500" in caplog.text


def test_fit_uses_training_fold_only():
    """Invariant: the PCA mean and the z-score statistics come from the training fold; a shifted test set
    keeps its shift (a z-score with the test set's own statistics would have mean exactly 0)."""
    train = _data(5)
    test = _data(6, n=20) + 10.0
    pca = PCAReconstruction(n_components=3).fit(train)
    np.testing.assert_allclose(pca.pca_.mean_, train.reshape(60, -1).mean(axis=0))
    z = TrainZScore().fit(train)
    z_train, z_test = z.transform(train), z.transform(test)
    assert abs(z_train.mean()) < 1e-9 and z_train.std() == pytest.approx(1.0)
    assert z_test.mean() == pytest.approx((test.mean() - train.mean()) / train.std())
    assert z_test.mean() > 1.0
    refit = TrainZScore().fit(pca.transform(train))
    assert abs(refit.transform(pca.transform(test)).mean()) > 0.05


def test_zscore_matches_manual_statistics():
    rng = np.random.default_rng(7)
    train, test = rng.normal(3.0, 2.0, size=(30, 2, 4)), rng.normal(size=(5, 2, 4))
    got = TrainZScore().fit(train).transform(test)
    np.testing.assert_allclose(got, (test - train.mean()) / train.std())
    per = TrainZScore(per_feature=True).fit(train).transform(test)
    np.testing.assert_allclose(per, (test - train.mean(axis=0)) / train.std(axis=0))
    constant = np.ones((4, 3))
    np.testing.assert_allclose(TrainZScore(per_feature=True).fit(constant).transform(constant + 1), np.ones((4, 3)))


def test_refuses_transform_before_fit():
    with pytest.raises(NotFittedError):
        TrainZScore().transform(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        PCAReconstruction().transform(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        PCAReconstruction().to_arrays()


def test_feature_count_must_match():
    est = PCAReconstruction(n_components=2).fit(_data(8))
    with pytest.raises(ValueError, match="features"):
        est.transform(np.zeros((2, 41)))
    with pytest.raises(ValueError, match="features"):
        TrainZScore().fit(np.zeros((3, 4))).transform(np.zeros((3, 5)))


def test_arrays_round_trip_through_safetensors():
    train, test = _data(9), _data(10, n=7)
    est = PCAReconstruction(n_components=5).fit(train)
    loaded = PCAReconstruction.from_arrays(load(save(est.to_arrays())))
    np.testing.assert_allclose(loaded.transform(test), est.transform(test), atol=1e-12)
    assert loaded.n_components_ == 5 and loaded.feature_shape_ == (1, 6, 7)
    assert loaded.explained_variance_ratio_total_ == pytest.approx(est.explained_variance_ratio_total_)
    for per_feature in (False, True):
        z = TrainZScore(per_feature=per_feature).fit(train)
        z_loaded = TrainZScore.from_arrays(load(save(z.to_arrays())))
        assert z_loaded.per_feature is per_feature
        np.testing.assert_allclose(z_loaded.transform(test), z.transform(test))
    with pytest.raises(ValueError, match="missing"):
        PCAReconstruction.from_arrays({"components": np.zeros((1, 2))})


def test_sklearn_contract():
    est = PCAReconstruction(n_components=0.9)
    assert clone(est).get_params()["n_components"] == 0.9
    out = est.fit_transform(_data(11))
    assert out.shape == (60, 1, 6, 7)


@pytest.mark.parametrize("bad", [0, -3, 0.0, 1.5, True, "500"])
def test_rejects_bad_n_components(bad):
    with pytest.raises(ValueError, match="n_components"):
        PCAReconstruction(n_components=bad)


def test_rejects_bad_per_feature():
    with pytest.raises(ValueError, match="per_feature"):
        TrainZScore(per_feature="yes")
