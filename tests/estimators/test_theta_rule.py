import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from blastscope.estimators.theta_rule import TABLE5_THETAS, contribution_counts, theta_combine, theta_sweep


def _case(seed: int, n: int = 300, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k) * 0.7, n)
    proba[:3] = np.eye(k)[np.arange(3) % k]  # rows with tau exactly 1
    aux = rng.integers(0, k, n)
    y = rng.integers(0, k, n)
    return proba, aux, y


@pytest.mark.parametrize("k", [2, 3])
def test_theta_zero_is_the_cnn_argmax(k: int) -> None:
    proba, aux, _ = _case(0, k=k)
    pred, source = theta_combine(proba, aux, 0.0)
    np.testing.assert_array_equal(pred, np.argmax(proba, axis=1))
    assert set(source) == {"cnn"}


@pytest.mark.parametrize("k", [2, 3])
def test_theta_one_is_the_auxiliary_classifier(k: int) -> None:
    proba, aux, _ = _case(1, k=k)
    pred, source = theta_combine(proba, aux, 1.0)
    np.testing.assert_array_equal(pred, aux)
    assert set(source) == {"svm"}


@pytest.mark.parametrize("theta", [0.55, 0.7, 0.9])
def test_intermediate_theta_picks_per_sample(theta: float) -> None:
    proba, aux, _ = _case(2, k=3)
    pred, source = theta_combine(proba, aux, theta)
    for i in range(len(aux)):
        if max(proba[i]) > theta:
            assert (pred[i], source[i]) == (int(np.argmax(proba[i])), "cnn")
        else:
            assert (pred[i], source[i]) == (aux[i], "svm")


def test_tau_equal_to_theta_goes_to_svm() -> None:
    """Eq. 5 keeps the CNN only when tau > theta strictly (released code: svm when tau <= theta)."""
    proba = np.array([[0.75, 0.25], [0.25, 0.75], [0.8, 0.2]])
    pred, source = theta_combine(proba, np.array([1, 0, 1]), 0.75)
    np.testing.assert_array_equal(pred, [1, 0, 0])
    np.testing.assert_array_equal(source, ["svm", "svm", "cnn"])


def test_cnn_tie_resolves_to_lower_class() -> None:
    pred, _ = theta_combine(np.array([[0.5, 0.5]]), np.array([1]), 0.4)
    assert pred[0] == 0


@pytest.mark.parametrize("theta", [-0.01, 1.01, float("nan"), "0.9"])
def test_invalid_theta_raises(theta) -> None:
    proba, aux, _ = _case(3)
    with pytest.raises(ValueError, match="theta must be in"):
        theta_combine(proba, aux, theta)


def test_logits_and_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="softmax"):
        theta_combine(np.array([[2.0, -1.0]]), np.array([0]), 0.5)
    with pytest.raises(ValueError, match="softmax"):
        theta_combine(np.array([[0.2, 0.2]]), np.array([0]), 0.5)
    with pytest.raises(ValueError, match="aux_pred must have shape"):
        theta_combine(np.array([[0.2, 0.8]]), np.array([0, 1]), 0.5)
    with pytest.raises(ValueError, match="integer"):
        theta_combine(np.array([[0.2, 0.8]]), np.array([0.0]), 0.5)


@pytest.mark.parametrize("k", [2, 3])
def test_sweep_rows_match_scikit_learn(k: int) -> None:
    proba, aux, y = _case(4, k=k)
    names = ["normal", "cancer", "other"][:k]
    rows = theta_sweep(proba, aux, y, class_names=names)
    assert [r["theta"] for r in rows] == list(TABLE5_THETAS)
    for row in rows:
        pred, source = theta_combine(proba, aux, row["theta"])
        assert row["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
        assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
        per_class = f1_score(y, pred, average=None, labels=list(range(k)))
        for i, name in enumerate(names):
            assert row[f"f1_{name}"] == pytest.approx(per_class[i])
        assert row["svm_share"] == pytest.approx(np.mean(proba.max(axis=1) <= row["theta"]))


def test_svm_share_grows_with_theta() -> None:
    """Invariant: raising theta never hands fewer samples to the auxiliary classifier."""
    proba, aux, y = _case(5)
    shares = [r["svm_share"] for r in theta_sweep(proba, aux, y, thetas=np.linspace(0, 1, 21))]
    assert shares[0] == 0.0 and shares[-1] == 1.0
    assert all(a <= b for a, b in zip(shares, shares[1:]))


def test_contribution_counts_match_loop() -> None:
    proba, aux, y = _case(6)
    pred, source = theta_combine(proba, aux, 0.9)
    correct = pred == y
    out = contribution_counts(source, correct)
    for name in ("cnn", "svm"):
        assert out[name]["answered"] == sum(1 for s in source if s == name)
        assert out[name]["correct"] == sum(1 for s, c in zip(source, correct) if s == name and c)
    assert out["cnn"]["answered"] + out["svm"]["answered"] == out["total"]["answered"] == len(y)
    assert out["total"]["correct"] == int(correct.sum())


def test_contribution_counts_validates() -> None:
    with pytest.raises(ValueError, match="source must hold only"):
        contribution_counts(np.array(["cnn", "rf"]), np.array([True, False]))
    with pytest.raises(ValueError, match="bool"):
        contribution_counts(np.array(["cnn"]), np.array([1]))
