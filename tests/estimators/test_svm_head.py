import numpy as np
import pytest
from safetensors.numpy import load, save
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from blastscope.estimators.svm_head import SpectralSVM


def _data(seed: int, k: int, n: int = 120, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Features small enough that exp(-100 ||x - x'||^2) is far from 0 and 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = 0.05 * rng.normal(size=(n, d))
    X[:, 0] += 0.04 * y
    return X, y


def _reference(standardize: bool) -> SVC:
    svc = SVC(C=10.0, kernel="rbf", gamma=100.0, decision_function_shape="ovo")
    return make_pipeline(StandardScaler(), svc) if standardize else svc


def test_fit_contract() -> None:
    X, y = _data(0, 2)
    est = SpectralSVM()
    assert est.fit(X, y) is est
    np.testing.assert_array_equal(est.classes_, [0, 1])
    assert isinstance(est.svc_, SVC) and est.scaler_ is None and est.n_features_in_ == X.shape[1]
    assert est.get_params() == {"C": 10.0, "gamma": 100.0, "standardize": False}
    fresh = clone(est.set_params(standardize=True))
    assert not hasattr(fresh, "svc_") and fresh.standardize is True
    assert isinstance(fresh.fit(X, y).scaler_, StandardScaler)


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("standardize", [False, True])
def test_matches_independent_scikit_learn_svc(k: int, standardize: bool) -> None:
    X, y = _data(k, k)
    X_test, _ = _data(50 + k, k, n=80)
    est = SpectralSVM(standardize=standardize).fit(X, y)
    ref = _reference(standardize).fit(X, y)
    np.testing.assert_allclose(est.decision_function(X_test), ref.decision_function(X_test), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(est.predict(X_test), ref.predict(X_test))


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("standardize", [False, True])
def test_from_arrays_matches_scikit_learn(k: int, standardize: bool) -> None:
    X, y = _data(10 + k, k)
    X_test, _ = _data(60 + k, k, n=100)
    X_test[:5] = X[:5]  # include points at support vectors (decision values of large magnitude)
    est = SpectralSVM(standardize=standardize).fit(X, y)
    restored = SpectralSVM.from_arrays(est.to_arrays())
    assert restored.svc_ is None
    ref = _reference(standardize).fit(X, y)
    dec = restored.decision_function(X_test)
    ref_dec = ref.decision_function(X_test)
    assert dec.shape == ref_dec.shape == ((100,) if k == 2 else (100, k * (k - 1) // 2))
    np.testing.assert_allclose(dec, ref_dec, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(restored.predict(X_test), ref.predict(X_test))
    np.testing.assert_array_equal(restored.classes_, ref.classes_)


def test_binary_decision_sign_points_to_second_class() -> None:
    """Invariant: for two classes, decision_function > 0 exactly where predict gives classes_[1]."""
    X, y = _data(3, 2)
    y = np.where(y == 1, 7, 4)  # non-contiguous labels
    restored = SpectralSVM.from_arrays(SpectralSVM().fit(X, y).to_arrays())
    X_test, _ = _data(4, 2, n=200)
    dec, pred = restored.decision_function(X_test), restored.predict(X_test)
    np.testing.assert_array_equal(pred, np.where(dec > 0, 7, 4))


def test_arrays_round_trip_through_safetensors() -> None:
    X, y = _data(5, 3)
    est = SpectralSVM(standardize=True).fit(X, y)
    arrays = est.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    restored = SpectralSVM.from_arrays(load(save(arrays)))
    assert restored.get_params() == est.get_params()
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))


def test_one_class_training_raises_with_counts() -> None:
    X, _ = _data(6, 2, n=30)
    with pytest.raises(ValueError, match=r"class counts \{1: 30\}"):
        SpectralSVM().fit(X, np.ones(30, dtype=int))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"C": 0}, "C="), ({"gamma": -1.0}, "gamma="), ({"gamma": "scale"}, "gamma="), ({"standardize": 1}, "standardize=")],
)
def test_invalid_parameters_raise_at_construction(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SpectralSVM(**kwargs)


def test_invalid_arrays_and_inputs_raise() -> None:
    X, y = _data(8, 2)
    arrays = SpectralSVM().fit(X, y).to_arrays()
    with pytest.raises(ValueError, match="lacks keys"):
        SpectralSVM.from_arrays({k: v for k, v in arrays.items() if k != "dual_coef"})
    arrays["n_support"] = arrays["n_support"] + 1
    with pytest.raises(ValueError, match="n_support"):
        SpectralSVM.from_arrays(arrays)
    with pytest.raises(ValueError, match="shape"):
        SpectralSVM().fit(X, y).predict(X[:, :3])
