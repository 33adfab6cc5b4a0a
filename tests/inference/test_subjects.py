"""Per-subject calls: Wilson interval of the leukemic fraction and the refer rule."""
from __future__ import annotations

import pandas as pd
import pytest

from blastscope.inference.subjects import subject_call, summarise_subjects


def _statsmodels_wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    return proportion_confint(k, n, alpha=0.05, method="wilson")


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 2), (2, 2), (9, 10), (10, 10), (3, 30), (27, 30), (15, 30), (0, 50)])
def test_call_follows_the_interval(k, n):
    """Invariant: 'leukemic' iff the whole 95% interval is above 0.5, 'normal' iff below, else 'refer'."""
    low, high = _statsmodels_wilson(k, n)
    out = subject_call(k, n, threshold=0.5)
    assert out["ci_low"] == pytest.approx(low, abs=1e-12) and out["ci_high"] == pytest.approx(high, abs=1e-12)
    expected = "leukemic" if low > 0.5 else "normal" if high < 0.5 else "refer"
    assert out["call"] == expected
    assert out["fraction_positive"] == k / n and out["cells"] == n and out["positive_cells"] == k


def test_hand_made_subjects():
    """Few cells are referred even when all agree; many consistent cells decide; a mixed subject is referred."""
    rows = []
    for subject, n_all, n_hem in [("few", 2, 0), ("sick", 19, 1), ("healthy", 1, 29), ("mixed", 10, 10)]:
        rows += [{"subject_id": subject, "pred": "all", "status": "ok", "review": False}] * n_all
        rows += [{"subject_id": subject, "pred": "hem", "status": "ok", "review": True}] * n_hem
    rows.append({"subject_id": "sick", "pred": "", "status": "error", "review": False})  # failed files do not count
    rows.append({"subject_id": "", "pred": "all", "status": "ok", "review": False})  # unknown subject: left out
    table = summarise_subjects(pd.DataFrame(rows), positive="all").set_index("subject_id")
    assert list(table.index) == ["few", "healthy", "mixed", "sick"]
    assert table.loc["few", "call"] == "refer"  # 2/2 but Wilson low = 0.34 < 0.5
    assert table.loc["sick", "call"] == "leukemic" and table.loc["sick", "cells"] == 20
    assert table.loc["healthy", "call"] == "normal" and table.loc["healthy", "review_cells"] == 29
    assert table.loc["mixed", "call"] == "refer" and table.loc["mixed", "fraction_positive"] == 0.5


def test_threshold_moves_the_call():
    """Invariant: the same subject (16 of 20 leukemic, CI ~[0.58, 0.92]) flips with the threshold."""
    assert subject_call(16, 20, threshold=0.5)["call"] == "leukemic"
    assert subject_call(16, 20, threshold=0.7)["call"] == "refer"
    assert subject_call(16, 20, threshold=0.95)["call"] == "normal"


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5])
def test_bad_threshold_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold must be in"):
        subject_call(1, 2, threshold=threshold)


def test_zero_cells_is_refused():
    with pytest.raises(ValueError, match="at least one cell"):
        subject_call(0, 0)
