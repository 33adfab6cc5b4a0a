"""Subject-level folds: no subject in two folds, every subject tested exactly once."""
from __future__ import annotations

import numpy as np
import pytest

from blastscope.data.index import make_index
from blastscope.evaluation.splits import LeakageError, assign_folds, check_no_leakage


def _index(n_subjects=21, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        label = "all" if s % 3 else "hem"
        for c in range(int(rng.integers(3, 30))):
            rows.append(dict(path=f"/d/{s}_{c}.bmp", label=label, subject_id=f"S{s}"))
    return make_index(rows)


def test_subject_folds_partition_subjects():
    """Invariant: each subject lies in exactly one fold and every fold holds both classes."""
    index = _index()
    folds = assign_folds(index, 7, seed=3)
    per_subject = index.assign(fold=folds).groupby("subject_id")["fold"].nunique()
    assert (per_subject == 1).all()
    assert set(folds) == set(range(7))
    tested = index.assign(fold=folds).groupby("fold")["subject_id"].unique()
    all_tested = np.concatenate(tested.to_numpy())
    assert sorted(all_tested) == sorted(index.subject_id.unique())  # each subject tested exactly once
    assert all(index.assign(fold=folds).query("fold == @k").label.nunique() == 2 for k in range(7))


def test_deterministic_for_seed():
    index = _index()
    assert (assign_folds(index, 5, seed=1) == assign_folds(index, 5, seed=1)).all()
    assert (assign_folds(index, 5, seed=1) != assign_folds(index, 5, seed=2)).any()


def test_refuses_missing_subjects_and_too_many_folds():
    index = _index(6)
    with pytest.raises(ValueError, match="exceeds the number of subjects"):
        assign_folds(index, 7)
    index.loc[0, "subject_id"] = ""
    with pytest.raises(ValueError, match="subject id on every row"):
        assign_folds(index, 3)


def test_image_mode_ignores_subjects():
    index = _index()
    folds = assign_folds(index, 4, mode="image")
    with pytest.raises(LeakageError):
        check_no_leakage(folds, index.subject_id.to_numpy())


def test_dataset_folds_are_renumbered():
    index = _index(6)
    index["fold"] = [2 if s in ("S0", "S1", "S2") else 5 for s in index.subject_id]
    assert set(assign_folds(index, 0, mode="dataset")) == {0, 1}


@pytest.mark.parametrize("n_splits", [2, 4, 5])
def test_inner_split_is_subject_disjoint_and_holds_every_class(n_splits):
    """Invariant: the inner selection split of one fold's training rows puts every subject on one
    side, both sides hold both classes, and together they are exactly the training rows."""
    from blastscope.evaluation.splits import inner_split

    index = _index()
    labels, groups = index["label"].to_numpy(), index["subject_id"].to_numpy()
    fit, select = inner_split(labels, groups, n_splits, seed=1)
    assert not set(groups[fit]) & set(groups[select])
    assert sorted(np.concatenate([fit, select]).tolist()) == list(range(len(index)))
    assert set(labels[fit]) == set(labels[select]) == {"all", "hem"}
    share = len(set(groups[select])) / len(set(groups))
    assert 0.5 / n_splits <= share <= 2.0 / n_splits
    again = inner_split(labels, groups, n_splits, seed=1)
    assert (again[0] == fit).all() and (again[1] == select).all()


def test_inner_split_with_two_subjects_per_class_keeps_both_classes_on_both_sides():
    from blastscope.evaluation.splits import inner_split

    labels = np.array(["a"] * 6 + ["b"] * 6)
    groups = np.repeat(["A1", "A2", "B1", "B2"], 3)
    fit, select = inner_split(labels, groups, 5, seed=0)
    assert set(labels[fit]) == set(labels[select]) == {"a", "b"}
    with pytest.raises(ValueError, match="at least 2 subjects"):
        inner_split(labels, np.full(12, "S"), 5)
