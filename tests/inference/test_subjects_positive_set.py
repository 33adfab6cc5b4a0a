"""Per-subject calls with a SET of positive classes: a cell counts when its predicted class is any of them."""
from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from blastscope.cli.bundle import _subject_table
from blastscope.evaluation.statistics import wilson_interval
from blastscope.inference.subjects import summarise_subjects

MALIGNANT = ["early_malignant", "pre_malignant", "pro_malignant"]
CELLS = pd.DataFrame({
    "subject_id": ["s1"] * 5 + ["s2"] * 4 + ["s3"] * 3,
    "pred": ["early_malignant", "pre_malignant", "pro_malignant", "pro_malignant", "benign",
             "benign", "benign", "benign", "pre_malignant",
             "early_malignant", "benign", "pro_malignant"],
    "status": "ok",
})


def test_counts_cells_predicted_as_any_positive_class() -> None:
    out = summarise_subjects(CELLS, MALIGNANT).set_index("subject_id")
    for subject, g in CELLS.groupby("subject_id"):
        k = sum(1 for p in g["pred"] if p in MALIGNANT)  # plain loop over the cells
        low, high = wilson_interval(k, len(g))
        row = out.loc[subject]
        assert (row["positive_cells"], row["cells"]) == (k, len(g))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
        assert row["call"] == ("leukemic" if low > 0.5 else "normal" if high < 0.5 else "refer")
    assert out.loc["s1", "positive_cells"] == 4 and out.loc["s2", "positive_cells"] == 1


def test_single_name_counts_only_that_class() -> None:
    out = summarise_subjects(CELLS, "pro_malignant").set_index("subject_id")
    assert out["positive_cells"].to_dict() == {"s1": 2, "s2": 0, "s3": 1}
    assert summarise_subjects(CELLS, ["pro_malignant"]).equals(summarise_subjects(CELLS, "pro_malignant"))


@pytest.mark.parametrize("positive", [[], [1, 2], None])
def test_bad_positive_is_refused(positive) -> None:
    with pytest.raises(ValueError, match="positive must be a class name"):
        summarise_subjects(CELLS, positive)


def test_cli_subject_table_names_the_set() -> None:
    console = Console(width=250, record=True)
    console.print(_subject_table(summarise_subjects(CELLS, MALIGNANT), MALIGNANT, 0.5))
    text = " ".join(console.export_text().split())  # the title wraps at the table's width
    assert "fraction of cells predicted any of 'early_malignant', 'pre_malignant', 'pro_malignant'" in text
    assert "positive cells" in text
    console = Console(width=250, record=True)
    console.print(_subject_table(summarise_subjects(CELLS, "pro_malignant"), "pro_malignant", 0.5))
    text = console.export_text()  # (export_text empties the record)
    assert "predicted 'pro_malignant'" in text and "pro_malignant cells" in text
