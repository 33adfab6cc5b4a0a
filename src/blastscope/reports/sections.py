"""The report's text and table sections, as HTML fragments built from a :class:`RunData`.

The paper-style tables are exactly those the CLI prints after ``blastscope cv``
(:func:`blastscope.reports.tables.print_run_tables`: SDCT Tables 4-6 and 8, and for their recipes
LeukoNet Table 2, LeukemiaNet Table 1 and Spike Table 5 with CIs): the printed rich tables are
recorded and converted, so terminal and report never disagree.
"""
from __future__ import annotations

from typing import Any

from blastscope import __version__
from blastscope.reports.markup import esc, note, plain, rich_table, table
from blastscope.reports.run_data import RunData

__all__ = ["header", "positive_row", "training_text", "config_section", "data_section", "tables_section", "folds_section"]



class _Recorder:
    """Stands in for a rich Console: keeps what is printed instead of drawing it."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def print(self, *objects: Any, **_: Any) -> None:
        self.items.extend(objects)


def header(data: RunData, generated: str) -> str:
    run, m = data.run, data.metrics or {}
    level = ('<p class="warning">IMAGE-LEVEL evaluation: cells of one subject may sit in training and test folds; '
             "scores are optimistic and not comparable with subject-level results.</p>") if run.get("image_level") else (
        f'<p class="ok">Subject-level evaluation: {run["n_folds"]} folds ({esc(run.get("fold_mode", ""))} mode); '
        "no subject appears in two folds.</p>")
    rows = [("recipe", run["recipe"]), ("paper", run.get("paper", "")), ("classes", ", ".join(data.class_names)),
            positive_row(data.class_names, data.positive), ("arms", ", ".join(data.arms)),
            *([("training augmentation", augmentation)] if (augmentation := training_text(data)) else []),
            ("folds", run["n_folds"]),
            ("run folder", str(data.run_dir.resolve())), ("generated", f"{generated} by blastscope {__version__}")]
    missing = [] if m else [note("metrics.json is missing: run `blastscope aggregate RUN_DIR` for the tables.", "warning")]
    return (f"<h1>blastscope report: {esc(run['recipe'])}</h1>" + level
            + table(None, rows, numeric_from=99, css="kv") + "".join(missing))


def positive_row(class_names: list[str], positive: str | list[str]) -> tuple[str, str]:
    """The header row of the positive side: ``("positive class", name)``, or for a set
    ``("positive classes", "a, b, c (any of them, score = sum of their probabilities), against: d")``."""
    from blastscope.evaluation.operating_point import positive_classes

    if isinstance(positive, str):
        return "positive class", positive
    pos = positive_classes(class_names, positive)
    if len(pos) == 1:
        return "positive class", pos[0]
    negatives = ", ".join(c for c in class_names if c not in pos)
    return "positive classes", f"{', '.join(pos)} (any of them, score = sum of their probabilities), against: {negatives}"


def _training(data: RunData) -> dict[str, dict]:
    """run.json ``training`` (per arm: augment, augment_minority_only, balance); for run folders
    written before it existed, the same derived from config.yaml (empty if that cannot be read)."""
    if isinstance(data.run.get("training"), dict):
        return data.run["training"]
    import yaml

    from blastscope.config import ConfigError, arm_training, config_from_dict

    try:
        return arm_training(config_from_dict(yaml.safe_load(data.config_text)))
    except (ConfigError, yaml.YAMLError, TypeError, AttributeError):
        return {}


def training_text(data: RunData) -> str:
    """One line naming each arm's training augmentation and sampling, e.g.
    ``stage1: sdct; stage2c: none; stage3c: sdct (minority class only, oversampled)``."""
    parts = []
    for arm, t in _training(data).items():
        if not isinstance(t, dict):
            continue
        if "run_folder" in t:
            parts.append(f"{arm}: as trained in run folder {t['run_folder']}")
            continue
        extra = []
        if t.get("augment", "none") != "none" and t.get("augment_minority_only"):
            extra.append("minority class only")
        if t.get("balance") == "oversample":
            extra.append("oversampled")
        parts.append(f"{arm}: {t.get('augment', '?')}" + (f" ({', '.join(extra)})" if extra else ""))
    return "; ".join(parts)


def config_section(data: RunData) -> str:
    return ('<h2 id="config">Resolved configuration</h2><details><summary>config.yaml (click to show)</summary>'
            f'<pre class="config">{esc(data.config_text)}</pre></details>')


def _counts(frame, classes: list[str]) -> list[str]:
    cells = []
    for c in classes:
        g = frame[frame["label"] == c]
        cells.append(f"{g['subject_id'].nunique()} / {len(g)}")
    cells.append(f"{frame['subject_id'].nunique()} / {len(frame)}")
    return cells


def data_section(data: RunData) -> str:
    """Subjects and cells per class in every cross-validation fold and held-out set (folds.csv)."""
    out = ['<h2 id="data">Data</h2>']
    f = data.folds
    if f is None:
        return out[0] + note("folds.csv is missing.", "warning")
    classes = data.class_names
    rows = []
    train = f[f["fold"] >= 0]
    for k in sorted(train["fold"].unique()):
        rows.append([f"fold {k + 1} (validation fold of Model{k + 1})", *_counts(train[train["fold"] == k], classes)])
    rows.append(["all training folds", *_counts(train, classes)])
    for split in sorted(set(f.loc[f["fold"] < 0, "split"])):
        rows.append([f"held-out '{split}'", *_counts(f[(f["fold"] < 0) & (f["split"] == split)], classes)])
    out.append(table(["set", *[f"{c}: subjects / cells" for c in classes], "total: subjects / cells"], rows,
                     caption="Subjects / cells per class (from folds.csv)"))
    if data.run.get("image_level"):
        out.append(note("Image-level grouping: each image counts as its own 'subject'.", "warning"))
    out.append(skipped_section(data))
    return "\n".join(out)


def skipped_section(data: RunData) -> str:
    """Files left out by ``--skip-invalid`` (RUN/skipped.csv), each with its reason."""
    import csv

    path = data.run_dir / "skipped.csv"
    if not path.exists():
        return ""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [[r.get("file", ""), r.get("reason", "")] for r in csv.DictReader(fh)]
    if not rows:
        return ""
    return (note(f"{len(rows)} file(s) were skipped as unreadable or badly named (--skip-invalid) and are not part of this run.", "warning")
            + table(["skipped file", "reason"], rows, caption="Skipped files (skipped.csv)", numeric_from=99))


def tables_section(data: RunData) -> str:
    """The paper-layout tables, recorded from the CLI's own table printers."""
    out = ['<h2 id="tables">Results tables (paper layouts)</h2>']
    if not data.metrics:
        return out[0] + note("No metrics.json: nothing to tabulate yet.", "warning")
    from blastscope.reports.tables import print_run_tables

    rec = _Recorder()
    print_run_tables(data.metrics, rec)
    for item in rec.items:
        if hasattr(item, "columns") and hasattr(item, "rows"):
            out.append(rich_table(item))
        else:
            text = plain(item)
            out.append(note(text, "warning" if "IMAGE-LEVEL" in text else "note"))
    return "\n".join(out)


def folds_section(data: RunData) -> str:
    """Per arm and fold: best epoch, validation accuracy, training time, sizes, SVM details."""
    rows = []
    for arm in data.arms:
        for k, info in sorted(data.fold_info.get(arm, {}).items()):
            svm = ""
            if "svm_train_cells" in info:
                svm = f"{info['svm_train_cells']} cells" + (" (fallback: CNN only)" if info.get("aux_fallback") else "")
            acc = info.get("best_select_accuracy", info.get("best_val_accuracy"))
            where = {"inner": "inner (training subjects)", "fold": "validation fold (optimistic)"}.get(info.get("selection"), "")
            if info.get("platt_a") is not None:
                svm += f", Platt slope {info['platt_a']:.3g}"
            rows.append([arm, f"Model{k + 1}", info.get("best_epoch", ""), f"{acc:.3f}" if isinstance(acc, float) else "",
                         f"{info['train_seconds']:.0f}" if "train_seconds" in info else "", info.get("n_train", ""),
                         info.get("n_select", ""), where, info.get("n_val", ""),
                         info.get("theta", "") if info.get("theta") is not None else "", svm])
    if not rows:
        return '<h2 id="folds">Fold models</h2>' + note("No finished folds (fold.json) found.", "warning")
    return '<h2 id="folds">Fold models</h2>' + table(
        ["arm", "model", "best epoch", "selection acc", "train s", "train cells", "selection cells", "chosen on",
         "scored cells", "theta", "SVM"], rows, numeric_from=2)
