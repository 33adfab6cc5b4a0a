"""Where a result came from: data, sample index digest, command line, versions, threads, times.

Written into ``run.json`` (``provenance``) when a run folder is created, and completed with the
end time when a :func:`~blastscope.evaluation.cross_validation.run_cv` call finishes; the report
and the bundle's model card repeat it.
"""
from __future__ import annotations

import hashlib
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

__all__ = ["index_digest", "is_synthetic", "provenance", "now", "versions"]


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def index_digest(index: pd.DataFrame) -> str:
    """SHA-256 of the sample index: one ``path, label, subject_id, split`` line per row, in index order."""
    h = hashlib.sha256()
    for row in index[["path", "label", "subject_id", "split"]].astype(str).itertuples(index=False):
        h.update(("\t".join(row) + "\n").encode("utf-8"))
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of blastscope, Python and the numerical libraries a result depends on."""
    import cv2
    import numpy
    import sklearn
    import torch

    from blastscope import __version__

    return {"blastscope": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scikit-learn": sklearn.__version__, "opencv": cv2.__version__}


def is_synthetic(folder: Path) -> bool:
    """Whether ``folder`` (or a folder above it, up to three levels) is a blastscope synthetic tree
    (:func:`blastscope.data.synth.write_synthetic_cnmc` leaves a ``SYNTHETIC.json`` at its root)."""
    folder = Path(folder).resolve()
    return any((p / "SYNTHETIC.json").is_file() for p in [folder, *folder.parents][:4])


def provenance(index: pd.DataFrame, data_dir: Path | str | None) -> dict:
    """``run.json`` provenance of a run started now on ``index`` read from ``data_dir`` (default:
    the folder that holds every indexed file). ``synthetic`` says whether the cells are blastscope's
    generated ones (found by the generator's ``SYNTHETIC.json``), never taken from the config."""
    import os

    import torch

    if data_dir is None and len(index):
        data_dir = os.path.commonpath([str(Path(p).resolve().parent) for p in index["path"]])
    return {
        "data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None,
        "synthetic": bool(data_dir is not None and is_synthetic(Path(data_dir))),
        "index_digest": index_digest(index),
        "n_cells": int(len(index)),
        "command": list(sys.argv),
        "versions": versions(),
        "threads": int(torch.get_num_threads()),
        "device": "cpu",
        "started": now(),
        "finished": None,
    }
