"""The sample index and its validation."""
from __future__ import annotations

import pytest

from blastscope.data.index import COLUMNS, IndexError_, make_index, read_index_csv, validate_index, write_index_csv


def _rows():
    return [dict(path=f"/x/{i}.bmp", label="all" if i < 4 else "hem", subject_id=f"S{i // 2}") for i in range(8)]


def test_make_index_fills_defaults():
    df = make_index([dict(path="/a.bmp")])
    assert list(df.columns) == COLUMNS
    assert df.iloc[0].to_dict() == {"path": "/a.bmp", "label": "", "subject_id": "", "source": "", "split": "", "fold": -1}


def test_missing_subject_ids_are_refused_and_named():
    rows = _rows()
    rows[3]["subject_id"] = ""
    with pytest.raises(IndexError_, match=r"no subject id: /x/3.bmp.*--grouping image"):
        validate_index(make_index(rows))


def test_image_grouping_makes_every_image_its_own_group():
    rows = [dict(r, subject_id="") for r in _rows()]
    out = validate_index(make_index(rows), grouping="image")
    assert out.attrs["grouping"] == "image"
    assert out.subject_id.nunique() == len(out)


def test_subject_with_two_labels():
    rows = _rows()
    rows[0]["subject_id"] = "S3"  # S3 holds hem cells
    with pytest.raises(IndexError_, match="two labels: S3"):
        validate_index(make_index(rows))


def test_empty_and_unlabelled():
    with pytest.raises(IndexError_, match="empty"):
        validate_index(make_index([]))
    rows = _rows()
    rows[1]["label"] = ""
    with pytest.raises(IndexError_, match="no label"):
        validate_index(make_index(rows))


def test_csv_round_trip(tmp_path):
    df = make_index(_rows())
    write_index_csv(df, tmp_path / "i.csv")
    back = read_index_csv(tmp_path / "i.csv")
    assert back.equals(df)
