"""`blastscope export` and `blastscope predict`."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from blastscope.cli import _bar, _console, _fail, main, terminal_safe, threads_option, user_text


@main.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Bundle directory to create.")
@click.option("--arm", default=None, help="Arm to export (default: the recipe's last arm).")
@click.option("--onnx", is_flag=True, help="Also export every fold model to ONNX (for `predict --backend onnx`).")
@click.option("--int8", is_flag=True, help="Also int8 for PyTorch (and, with --onnx, int8 graphs), calibrated on each fold's "
              "training cells and kept only if they agree with float32 on its out-of-fold cells (>= 99.5% of labels, AUC "
              "within 0.005).")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@threads_option
def export_cmd(run_dir: Path, out: Path, arm: str | None, onnx: bool, int8: bool, overwrite: bool, threads: int) -> None:
    """Pack one arm of a finished RUN_DIR into a verified, pickle-free model bundle."""
    from blastscope.config import ConfigError
    from blastscope.inference.export import export_bundle
    from blastscope.inference.manifest import BundleError

    t0 = time.perf_counter()
    try:
        path = export_bundle(run_dir, out, arm=arm, onnx=onnx, overwrite=overwrite, int8=int8)
    except (BundleError, ConfigError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    meta = json.loads((path / "bundle.json").read_text())
    click.echo(f"bundle: {path}  arm {meta['arm']} ({meta['model']['id']}), {len(meta['folds'])} fold models"
               f"{', ONNX' if onnx else ''}  ({time.perf_counter() - t0:.1f} s)")
    if int8:
        kinds = [("PyTorch", meta["int8"], "torch")] + ([("ONNX", meta["onnx"]["int8"], "onnx")] if onnx else [])
        for kind, record, backend in kinds:
            if record.get("refused"):
                click.echo(f"warning: no {kind} int8: {record['refused']}", err=True)
                continue
            for f in record["folds"]:
                auc = "-" if f["auc_diff"] is None else f"{f['auc_diff']:.4f}"
                parts = [f"the fold's answers: {f['answer_agreement']:.1%}"] if f.get("answer_agreement") is not None else []
                if f.get("out_of_domain_agreement") is not None:
                    parts.append(f"out-of-domain flags: {f['out_of_domain_agreement']:.1%}")
                answers = f" ({'; '.join(parts)})" if parts else ""
                click.echo(f"{kind} int8 fold {f['fold']}: labels agree with float32 on {f['label_agreement']:.1%}{answers} "
                           f"of {f['cells']} out-of-fold cells, AUC differs by {auc}, speed {f['speedup']:.2f}x float32")
            vote = record.get("vote")
            if vote and "prediction_set_agreement" in vote:
                click.echo(f"{kind} int8, the whole bundle on {vote['cells']} check cells: voted labels agree on "
                           f"{vote['pred_agreement']:.1%}, prediction sets {vote['prediction_set_agreement']:.1%}, review "
                           f"flags {vote['review_agreement']:.1%}")
            if record["accepted"]:
                click.echo(f"{kind} int8 accepted: `predict --backend {backend}` runs it (--precision float32 to choose float32)")
            else:
                click.echo(f"warning: {kind} int8 rejected ({record['rule']} fails); the bundle keeps float32 only for it",
                           err=True)


def _subject_table(subjects, positive: str | list[str], threshold: float):
    """``positive``: the positive class, or the list of positive classes (a cell counts if predicted as any)."""
    from rich.table import Table
    from rich.text import Text

    from rich.markup import escape

    if isinstance(positive, str):
        what, column = f"'{escape(positive)}'", f"{escape(positive)} cells"
    else:
        what, column = "any of " + ", ".join(f"'{escape(p)}'" for p in positive), "positive cells"
    t = Table(title=f"Per subject: fraction of cells predicted {what} (Wilson 95% CI); "
                    f"refer when the interval contains {threshold:g}", title_justify="left")
    for col in ("subject", "cells", column, "fraction [95% CI]", "call", "review cells"):
        t.add_column(col, justify="left" if col in ("subject", "call") else "right")
    styles = {"leukemic": "bold red", "normal": "green", "refer": "bold yellow"}
    for r in subjects.to_dict("records"):
        t.add_row(user_text(r["subject_id"]), str(r["cells"]), str(r["positive_cells"]),
                  f"{r['fraction_positive']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
                  Text(r["call"], style=styles[r["call"]]), str(r["review_cells"]))
    return t


def _check_heatmaps(folder: Path, predictor, overwrite: bool) -> None:
    from importlib.util import find_spec

    if find_spec("captum") is None:
        _fail("--heatmaps needs Captum: pip install 'blastscope[explain]'")
    if predictor.bundle.spec["input"]["name"] != "rgb":
        _fail(f"--heatmaps: this bundle's model reads {predictor.bundle.spec['input']['name']!r} features, not pixels; "
              "heat maps are made for models that read the image")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        _fail(f"--heatmaps {folder}: the folder is not empty; choose another or pass --overwrite")


def _write_heatmaps(folder: Path, predictor, cells) -> list[Path]:
    """SmoothGrad maps of the voted class for every predicted cell, averaged over the fold CNNs."""
    import numpy as np

    from blastscope.inference.heatmaps import pixel_heatmaps, write_overlays

    ok = cells[cells["status"] == "ok"]
    models = [m for m, _ in predictor.bundle.torch_models()]
    names = predictor.class_names
    written = []
    for start in range(0, len(ok), 16):
        part = ok.iloc[start:start + 16]
        images = np.stack([predictor.load(Path(f)) for f in part["file"]])
        maps = pixel_heatmaps(models, images, np.array([names.index(p) for p in part["pred"]]))
        stems = [f"{start + i:05d}_{Path(f).stem}" for i, f in enumerate(part["file"])]
        written += write_overlays(folder, stems, images, maps)
    return written


def _stain_checks(predictor, cells) -> dict[str, dict]:
    """Per subject of the predicted cells: the bundle's stain-range check (empty without one)."""
    stain = predictor.bundle.stain_range
    ok = cells[cells["status"] == "ok"]
    if stain is None or ok.empty:
        return {}
    out = {}
    for subject, g in ok.groupby("subject_id"):
        images = [predictor.load(Path(f)) for f in g["file"].head(32)]
        out[str(subject)] = stain.check(images)
    return out


def _records(frame) -> list[dict]:
    """Rows as dicts with missing values as None (JSON null, not the invalid NaN token)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def predict_outputs(out: Path) -> list[Path]:
    """The files ``predict --out OUT`` writes: OUT (per-cell CSV), OUT's .json and OUT_subjects.csv."""
    return [out, out.with_suffix(".json"), out.with_name(f"{out.stem}_subjects.csv")]


def _check_outputs(out: Path, inputs: list[Path], others: list[Path], overwrite: bool) -> None:
    """Refuse outputs that collide with each other or with an input, and existing ones without --overwrite."""
    import os

    outputs = predict_outputs(out)
    real = [os.path.realpath(p) for p in outputs]
    if len(set(real)) < len(real):
        _fail(f"--out {out}: its outputs {', '.join(map(str, outputs))} would overwrite each other; "
              "give the per-cell CSV a .csv name")
    read = {os.path.realpath(p) for p in [*inputs, *others]}
    clash = [p for p, r in zip(outputs, real) if r in read]
    if clash:
        _fail(f"--out {out}: {', '.join(map(str, clash))} is an input; choose another --out")
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        _fail(f"--out {out}: {', '.join(map(str, existing))} already exist(s); choose another --out or pass --overwrite")


@main.command("predict")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Per-cell CSV; <stem>.json (everything) and <stem>_subjects.csv are written beside it.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True)
@click.option("--subject", default=None, help="Subject id of all inputs (one patient).")
@click.option("--subjects-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV with columns file,subject_id (default: subject ids from C-NMC file names).")
@click.option("--review-below", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Bundles without conformal calibration: flag cells whose confidence is below this.")
@click.option("--alpha", type=click.FloatRange(0, 0.5, min_open=True, max_open=True), default=None,
              help="Conformal error rate per class (default: the bundle's, 0.05); cells whose prediction set is not one class are flagged.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Subject decision threshold on the fraction of leukemic cells (default: the bundle's, chosen on "
                   "training subjects, else 0.5).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N (torch backend).")
@click.option("--precision", type=click.Choice(["auto", "float32", "int8"]), default="auto", show_default=True,
              help="int8 of `export --int8` for the chosen backend (auto: where the bundle has accepted it) or float32.")
@click.option("--heatmaps", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write one PNG per cell (the cell beside its SmoothGrad heat map in the image domain) into this folder.")
@click.option("--overwrite", is_flag=True, help="Replace output files that already exist (never an input file).")
@threads_option
def predict_cmd(bundle: Path, inputs: tuple[str, ...], out: Path, backend: str, subject: str | None,
                subjects_csv: Path | None, review_below: float, alpha: float | None, threshold: float | None,
                batch_size: int, device: str, precision: str, heatmaps: Path | None, overwrite: bool, threads: int) -> None:
    """Predict INPUTS (files, folders, globs) with BUNDLE: per cell, per subject, and the files that failed.

    Exit status 0 when at least one cell was predicted (failed files are listed on stderr and in
    the outputs), 1 when none could be, 2 for unusable arguments or a bundle that fails verification.
    """
    from blastscope.engine.atomic import atomic_write_json, atomic_write_text, spreadsheet_safe
    from blastscope.inference.files import (
        collect_inputs,
        read_subjects_csv,
        resolve_subjects,
    )
    from blastscope.inference.manifest import BundleError
    from blastscope.inference.predictor import Predictor
    from blastscope.inference.subjects import summarise_subjects

    if subject is not None and subjects_csv is not None:
        _fail("give --subject or --subjects-csv, not both")
    files, missing = collect_inputs(inputs)
    for b in missing:
        click.echo(f"skipped {terminal_safe(b.file)}: {terminal_safe(b.reason)}", err=True)
    if not files:
        _fail("no image files to predict")
    try:
        mapping = read_subjects_csv(subjects_csv) if subjects_csv is not None else None
        subject_ids = resolve_subjects(files, subject, mapping)
        predictor = Predictor(bundle, backend=backend, batch_size=batch_size, progress=_bar, alpha=alpha, device=device,
                              precision=precision)
    except (BundleError, ValueError) as e:
        _fail(str(e))
    _check_outputs(out, files, [subjects_csv] if subjects_csv is not None else [], overwrite)  # before any work
    if heatmaps is not None:
        _check_heatmaps(heatmaps, predictor, overwrite)
    card = predictor.bundle.spec.get("model_card") or {}
    if (card.get("training_data") or {}).get("synthetic"):
        click.echo("warning: this model was trained on blastscope's SYNTHETIC cells, not on real patients' cells; "
                   "its answers say nothing about real samples", err=True)
    result = predictor.predict_files(files, subject_ids, review_below=review_below)
    bad = missing + result.bad
    for b in result.bad:
        click.echo(f"skipped {terminal_safe(b.file)}: {terminal_safe(b.reason)}", err=True)
    cells, positive = result.cells, predictor.bundle.positive
    if threshold is None:
        threshold = predictor.patient_threshold if predictor.patient_threshold is not None else 0.5
    subjects = summarise_subjects(cells, positive, threshold, count_flagged=False)
    stain = _stain_checks(predictor, cells)
    for subject, check in stain.items():
        if check.get("outside"):
            click.echo(f"warning: subject {terminal_safe(subject or '(unknown)')}: the stain of these cells lies outside the "
                       f"training range (angles {', '.join(f'{a:.1f}' for a in check['angles'])} degrees from the training "
                       f"stain vectors; training subjects reach {', '.join(f'{a:.1f}' for a in check['max_training_angles'])}): "
                       "another stain, lab or scanner, so every answer is doubtful", err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, spreadsheet_safe(cells).to_csv(index=False))
    atomic_write_text(out.with_name(f"{out.stem}_subjects.csv"), spreadsheet_safe(subjects).to_csv(index=False))
    spec = predictor.bundle.spec
    atomic_write_json(out.with_suffix(".json"), {
        "bundle": {"path": str(bundle), "recipe": spec.get("recipe"), "arm": spec["arm"], "model": spec["model"]["id"],
                   "class_names": spec["class_names"], "positive": positive, "theta": predictor.theta, "fold_thetas": predictor.thetas,
                   "folds": len(spec["folds"]), "evaluation": spec.get("evaluation"), "model_card": spec.get("model_card")},
        "settings": {"backend": backend, "precision": predictor.precision, "threads": threads, "device": str(predictor.device), "review_below": review_below if predictor.alpha is None else None,
                     "alpha": predictor.alpha, "threshold": threshold, "batch_size": batch_size},
        "trust": {"calibrated": predictor.calibrated, "temperatures": predictor.temperatures, "theta_on": predictor.theta_on,
                  "conformal": predictor.alpha is not None,
                  "review_rule": (f"prediction set not exactly the voted class at alpha {predictor.alpha:g}, or out of domain"
                                  if predictor.alpha is not None else
                                  f"confidence below {review_below:g}, or out of domain (no conformal calibration in this bundle)"),
                  "patient_rule": f"fraction of {positive} cells among cells not flagged, Wilson 95% CI against {threshold:g}; "
                                  "refer when the interval contains it",
                  "stain": stain},
        "cells": _records(cells), "subjects": _records(subjects),
        "bad_files": [b.__dict__ for b in bad], "seconds": result.seconds,
    })
    if heatmaps is not None:
        written = _write_heatmaps(heatmaps, predictor, cells)
        click.echo(f"wrote {len(written)} heat maps to {heatmaps}")
    console = _console()
    ok = cells[cells["status"] == "ok"]
    if len(subjects):
        console.print(_subject_table(subjects, positive, threshold))
    counts = ", ".join(f"{c} {int((ok['pred'] == c).sum())}" for c in predictor.class_names)
    click.echo(f"{len(ok)} cells predicted ({counts}); {int(ok['review'].sum())} flagged for review; "
               f"{len(bad)} failed; {result.seconds:.1f} s with {backend} ({predictor.precision})")
    click.echo(f"wrote {out}, {out.with_suffix('.json')}, {out.with_name(f'{out.stem}_subjects.csv')}")
    if ok.empty:
        click.echo("error: no file could be predicted", err=True)
        sys.exit(1)
