"""``predict_case``: a patient's case end to end, in fresh processes, against the reference.

The same ``n`` cells (the C-NMC sample cells under distinct names, in one folder) are predicted by
``blastscope predict BUNDLE FOLDER`` (decode, centre, stain and DCT layers, every fold model
batched, SVM, vote, CSV and JSON written) and by :mod:`blastscope.bench.case_reference` (one image
at a time, one fold model after another), each in a new Python process timed from start to exit,
so imports and model loading count as they do for a lab. The labels must agree (ties between fold
models aside: the reference breaks them by the first class, ``predict`` by the mean probability).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blastscope.bench.result import CaseResult

__all__ = ["run_case"]


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def run_case(bundle: Path, paths: list[Path], n_cells: int, threads: int | None = None) -> CaseResult:
    with tempfile.TemporaryDirectory(prefix="blastscope-case-bench-") as tmp:
        folder = Path(tmp) / "cells"
        folder.mkdir()
        for i in range(n_cells):
            src = paths[i % len(paths)]
            try:
                os.link(src, folder / f"{i:04d}_{src.name}")  # no copy where the file system allows
            except OSError:
                shutil.copyfile(src, folder / f"{i:04d}_{src.name}")
        out, ref_out = Path(tmp) / "predict.csv", Path(tmp) / "reference.csv"
        extra = ["--threads", str(threads)] if threads else []
        optimised = _timed([sys.executable, "-m", "blastscope", "predict", str(bundle), str(folder), "--out", str(out), *extra])
        reference = _timed([sys.executable, "-m", "blastscope.bench.case_reference", str(bundle), str(folder), str(ref_out)])
        got = {r["file"]: r for r in csv.DictReader(out.open())}
        ref = {r["file"]: r for r in csv.DictReader(ref_out.open())}
        decided = [f for f, r in ref.items() if _no_tie(r["votes"])]
        same = sum(got[f]["pred"] == ref[f]["pred"] for f in decided) / max(len(decided), 1)
    return CaseResult("predict_case", f"predict, a {n_cells}-cell case end to end (fresh process) vs one image and one fold at a time",
                      "s", optimised, reference, higher_is_better=False, target=">= 8x reference and <= 5 s",
                      met=reference / optimised >= 8.0 and optimised <= 5.0,
                      agreement={"same_label_share": same, "cells_compared": len(decided), "ok": same == 1.0},
                      notes="both in new processes: imports, bundle loading and writing count",
                      extra={"bundle": str(bundle), "cells": n_cells})


def _no_tie(votes: str) -> bool:
    labels = votes.split("|")
    counts = sorted((labels.count(v) for v in set(labels)), reverse=True)
    return len(counts) == 1 or counts[0] > counts[1]

