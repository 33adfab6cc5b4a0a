"""Property tests of the sample index: validate_index on generated frames returns an index meeting every
invariant it promises, or raises IndexError_ (ValueError only for a bad ``grouping`` argument)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blastscope.data.index import COLUMNS, IMAGE_GROUP_PREFIX, IndexError_, make_index, validate_index

SETTINGS = settings(max_examples=300, deadline=None)
SMALL_TEXT = st.sampled_from(["", "a", "b", "all", "hem", "H1", "1", " ", "é", "None", "nan"]) | st.text(max_size=4)
ROW = st.fixed_dictionaries({
    "path": st.sampled_from([f"/d/{i}.bmp" for i in range(8)]) | st.text(max_size=6),
    "label": SMALL_TEXT,
    "subject_id": SMALL_TEXT,
    "source": SMALL_TEXT,
    "split": st.sampled_from(["", "train", "validation", "test"]) | SMALL_TEXT,
    "fold": st.integers(-1, 5),
}, optional={"extra": st.integers()})
RAW_CELL = st.one_of(st.none(), st.just(np.nan), st.integers(-3, 3), st.floats(allow_nan=True), SMALL_TEXT)


def _check_valid(out: pd.DataFrame, grouping: str, require_labels: bool) -> None:
    assert out.attrs["grouping"] == grouping and list(out.columns)[: len(COLUMNS)] == COLUMNS
    assert not out["path"].duplicated().any()
    if require_labels:
        assert (out["label"].map(lambda v: isinstance(v, str) and len(v) > 0)).all()
    subjects = out["subject_id"]
    assert subjects.map(lambda v: isinstance(v, str) and len(v) > 0).all()
    if grouping == "image":
        assert (subjects == IMAGE_GROUP_PREFIX + out["path"]).all()
    else:
        labelled = out[out["label"].str.len() > 0]
        assert (labelled.groupby("subject_id")["label"].nunique() <= 1).all()


@SETTINGS
@given(st.lists(ROW, max_size=12), st.sampled_from(["subject", "image"]), st.booleans())
def test_validate_index_on_made_indexes(rows, grouping, require_labels):
    frame = make_index(rows)
    try:
        out = validate_index(frame, grouping=grouping, require_labels=require_labels)
    except IndexError_:
        return
    _check_valid(out, grouping, require_labels)
    assert len(out) == len(frame)


@SETTINGS
@given(st.lists(st.fixed_dictionaries({c: RAW_CELL for c in COLUMNS}), min_size=1, max_size=8),
       st.sets(st.sampled_from(COLUMNS), max_size=2), st.sampled_from(["subject", "image"]))
def test_validate_index_on_raw_frames(rows, drop, grouping):
    """Frames not built by make_index (missing columns, None/NaN/number cells) are refused or cleaned."""
    frame = pd.DataFrame(rows).drop(columns=sorted(drop))
    try:
        out = validate_index(frame, grouping=grouping)
    except IndexError_:
        return
    _check_valid(out, grouping, True)


@pytest.mark.parametrize("grouping", ["group", None, 1])
def test_bad_grouping_argument(grouping):
    with pytest.raises(ValueError, match="grouping must be"):
        validate_index(make_index([{"path": "/a.bmp", "label": "all", "subject_id": "1"}]), grouping=grouping)
