"""Per-subject summary of cell predictions: fraction leukemic with a Wilson interval and a call.

A subject (patient) is called from its cells, not from one cell: with ``k`` of ``n`` cells
predicted as the positive (leukemic) class, the fraction ``k / n`` gets a Wilson score interval
(:func:`blastscope.evaluation.statistics.wilson_interval`, the interval Noshad & Fallahi use for
proportions, Spike-PCA-ResNet section 2.4) and the call is

- ``"leukemic"`` when the whole interval lies above the decision threshold,
- ``"normal"`` when it lies below it,
- ``"refer"`` when it contains the threshold (too few cells, or a mixed picture: a person
  must look).

None of the papers calls subjects; this is the toolkit's addition for laboratory use. For more
than two classes "leukemic" means the recipe's positive class (e.g. ``all``), or any class of its
positive SET (``data.positive`` a list, e.g. the three ALL subtypes of the Taleqani smear set): a
cell counts as positive when its predicted (voted) class is one of them; cells of other classes
count as not positive.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from blastscope.evaluation.statistics import wilson_interval

__all__ = ["subject_call", "summarise_subjects", "CALLS"]

CALLS = ("leukemic", "normal", "refer")


def _check_threshold(threshold: float) -> float:
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got threshold={threshold}")
    return float(threshold)


def subject_call(positive: int, n: int, threshold: float = 0.5, confidence: float = 0.95) -> dict:
    """Call one subject from ``positive`` of ``n`` cells predicted leukemic.

    Args:
        positive: cells predicted as the positive class, integer in [0, n].
        n: cells of the subject, integer >= 1.
        threshold: decision threshold on the fraction, in (0, 1).
        confidence: level of the Wilson interval, in (0, 1).

    Returns:
        ``{"cells", "positive_cells", "fraction_positive", "ci_low", "ci_high", "call"}`` with
        call "leukemic" if ``ci_low > threshold``, "normal" if ``ci_high < threshold``, else "refer".
    """
    threshold = _check_threshold(threshold)
    if int(n) < 1:
        raise ValueError(f"a subject needs at least one cell, got n={n}")
    low, high = wilson_interval(positive, n, confidence)
    call = "leukemic" if low > threshold else "normal" if high < threshold else "refer"
    return {"cells": int(n), "positive_cells": int(positive), "fraction_positive": positive / n,
            "ci_low": low, "ci_high": high, "call": call}


def summarise_subjects(cells: pd.DataFrame, positive: str | Sequence[str], threshold: float = 0.5,
                       confidence: float = 0.95, count_flagged: bool = True) -> pd.DataFrame:
    """One row per subject from per-cell predictions.

    Args:
        cells: columns ``subject_id`` (``""`` = unknown subject, left out), ``pred`` (class name)
            and optionally ``review`` (bool); only rows with ``status == "ok"`` count when a
            ``status`` column exists.
        positive: name of the leukemic class, or a list of names (a cell predicted as any of them counts).
        count_flagged: False: cells flagged for review (``review``) are counted apart, not in the
            fraction (``counted_cells`` are the others); a subject whose every cell is flagged
            is called "refer".

    Returns:
        Columns ``subject_id, cells, counted_cells, positive_cells, fraction_positive, ci_low,
        ci_high, call, review_cells``, sorted by subject id (``positive_cells`` and the fraction
        are over the counted cells).
    """
    threshold = _check_threshold(threshold)
    positives = [positive] if isinstance(positive, str) else list(positive) if isinstance(positive, Sequence) else []
    if not positives or not all(isinstance(p, str) for p in positives):
        raise ValueError(f"positive must be a class name or a non-empty list of class names, got positive={positive!r}")
    frame = cells
    if "status" in frame.columns:
        frame = frame[frame["status"] == "ok"]
    frame = frame[frame["subject_id"].astype(str) != ""]
    rows = []
    for subject, g in frame.groupby("subject_id", sort=True):
        flagged = g["review"].astype(bool).to_numpy() if "review" in g.columns else np.zeros(len(g), bool)
        counted = g if count_flagged else g[~flagged]
        k = int(counted["pred"].isin(positives).sum())
        if len(counted):
            row = {"subject_id": subject, **subject_call(k, len(counted), threshold, confidence)}
        else:
            row = {"subject_id": subject, "positive_cells": 0, "fraction_positive": float("nan"),
                   "ci_low": float("nan"), "ci_high": float("nan"), "call": "refer"}
        row.update(cells=len(g), counted_cells=len(counted), review_cells=int(flagged.sum()))
        rows.append(row)
    columns = ["subject_id", "cells", "counted_cells", "positive_cells", "fraction_positive", "ci_low", "ci_high", "call",
               "review_cells"]
    return pd.DataFrame(rows, columns=columns)
