"""Everything a report reads from a run folder, loaded once (files only; never imports torch).

The run-folder format is the interface between stages (see ``notes/ARCH.md``): ``run.json``,
``config.yaml``, ``folds.csv``, ``metrics.json``, ``predictions.csv``, ``predictions_vote.csv``,
per arm and fold ``history.csv`` and ``fold.json``, and ``artefacts/`` written by
:func:`blastscope.engine.artefacts.write_report_artefacts`. Missing optional files become ``None``
(the report says what is missing); a folder without ``run.json`` is not a run.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from blastscope.run_layout import FOLD_GLOB, fold_index

__all__ = ["RunData", "ReportError", "read_run", "read_csv"]

logger = logging.getLogger(__name__)


class ReportError(ValueError):
    """A folder that cannot be reported on; the message names the folder and the missing file."""


def read_csv(path: Path) -> pd.DataFrame:
    """A run-folder CSV with subject ids and labels kept as strings ("" not NaN)."""
    from blastscope.engine.atomic import read_safe_csv

    return read_safe_csv(path, keep_default_na=False, dtype={"subject_id": str, "label": str})


@dataclass
class RunData:
    run_dir: Path
    run: dict
    config_text: str
    metrics: dict | None
    folds: pd.DataFrame | None
    predictions: pd.DataFrame | None
    votes: pd.DataFrame | None
    histories: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    fold_info: dict[str, dict[int, dict]] = field(default_factory=dict)
    artefacts: dict | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.run["class_names"])

    @property
    def positive(self) -> str | list[str]:
        """run.json ``positive``: the positive class, or the list of positive classes."""
        return self.run["positive"]

    @property
    def arms(self) -> list[str]:
        return list(self.run["arms"])

    @property
    def artefacts_dir(self) -> Path:
        return self.run_dir / "artefacts"


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from None


def read_run(run_dir: Path | str) -> RunData:
    """Load a run folder; raises :class:`ReportError` if ``run.json`` is absent."""
    run_dir = Path(run_dir)
    run = _json(run_dir / "run.json")
    if run is None:
        raise ReportError(f"{run_dir}: not a run folder (no run.json); run `blastscope cv` first")
    config_path = run_dir / "config.yaml"
    data = RunData(
        run_dir=run_dir, run=run,
        config_text=config_path.read_text() if config_path.exists() else "(config.yaml missing)",
        metrics=_json(run_dir / "metrics.json"),
        folds=read_csv(run_dir / "folds.csv") if (run_dir / "folds.csv").exists() else None,
        predictions=read_csv(run_dir / "predictions.csv") if (run_dir / "predictions.csv").exists() else None,
        votes=read_csv(run_dir / "predictions_vote.csv") if (run_dir / "predictions_vote.csv").exists() else None,
        artefacts=_json(run_dir / "artefacts" / "artefacts.json"),
    )
    for arm in data.arms:
        for fold_dir in sorted((run_dir / "arms" / arm).glob(FOLD_GLOB)):
            k = fold_index(fold_dir.name)
            if k is None:
                continue
            if (fold_dir / "history.csv").exists():
                data.histories.setdefault(arm, {})[k] = pd.read_csv(fold_dir / "history.csv")
            info = _json(fold_dir / "fold.json")
            if info is not None:
                data.fold_info.setdefault(arm, {})[k] = info
    return data
