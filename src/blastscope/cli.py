"""The ``blastscope`` command line. Only this module configures logging and draws progress bars."""
from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from blastscope import __version__

logger = logging.getLogger("blastscope")


@contextmanager
def _bar(total: int | None = None, desc: str = "", leave: bool = True, **_: object):
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True, disable=None, file=sys.stderr) as bar:
        yield bar


def _console():
    from rich.console import Console

    return Console()


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blastscope")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """blastscope: leukemia cell-image classification (SDCT-AuxNet-theta, LeukoNet, Spike-PCA-ResNet, LeukemiaNet)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- data
@main.group()
def data() -> None:
    """Create and inspect data sets."""


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--preset", type=click.Choice(["quick", "quick3", "default"]), default="quick", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--signal", type=float, default=None, help="Class signal strength in [0, 1].")
@click.option("--train-subjects", type=int, default=None, help="Training subjects per class.")
@click.option("--cells", type=(int, int), default=None, help="Cells per subject: MIN MAX.")
@click.option("--classes", default=None, help="Comma-separated classes among all,hem,aml.")
def data_synth(out: Path, preset: str, seed: int, signal, train_subjects, cells, classes) -> None:
    """Write a synthetic C-NMC data set (real 450x450 BMPs, official layout) to OUT."""
    from dataclasses import replace

    from blastscope.data.synth import PRESETS, write_synthetic_cnmc

    cfg = replace(PRESETS[preset], seed=seed)
    try:
        if signal is not None:
            cfg = replace(cfg, signal=signal)
        if train_subjects is not None:
            cfg = replace(cfg, train_subjects=train_subjects)
        if cells is not None:
            cfg = replace(cfg, cells_per_subject=tuple(cells))
        if classes:
            cfg = replace(cfg, classes=tuple(c.strip() for c in classes.split(",")))
    except ValueError as e:
        _fail(str(e))
    with _bar(desc="synthesising cells") as bar:
        summary = write_synthetic_cnmc(out, cfg, progress=bar.update)
    click.echo(f"wrote {summary['images']} images of {len(summary['subjects'])} subjects to {out}")


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--layout", type=click.Choice(["auto", "cnmc", "all-idb1", "all-idb2", "folder"]), default="auto")
@click.option("--subjects-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def data_check(root: Path, layout: str, subjects_csv, as_json: bool) -> None:
    """Check a data folder: layout, counts per class/subject/fold, and every problem at once."""
    from blastscope.data.check import check_dataset

    with _bar(desc="reading images") as bar:
        report = check_dataset(root, layout, subjects_csv, progress=bar.update)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_check(report)
    sys.exit(0 if report["ok"] else 1)


def _print_check(report: dict) -> None:
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{report['root']}[/bold]  layout: {report['layout']}  images: {report['images']}")
    if "classes" in report:
        t = Table(title="Cells and subjects per class")
        t.add_column("class")
        t.add_column("cells", justify="right")
        t.add_column("subjects", justify="right")
        for c, n in report["classes"].items():
            t.add_row(c, str(n), str(report["subjects"].get(c, 0)))
        t.add_row("[bold]total", str(sum(report["classes"].values())), str(report["subjects_total"]))
        con.print(t)
        if report["unlabelled"]:
            con.print(f"unlabelled images: {report['unlabelled']}")
        con.print("splits: " + ", ".join(f"{k} {v}" for k, v in report["splits"].items()))
        if report["folds"]:
            con.print("dataset folds: " + "; ".join(f"fold {k}: " + ", ".join(f"{c} {n}" for c, n in v.items()) for k, v in report["folds"].items()))
        con.print("image sizes: " + ", ".join(f"{k} ({v})" for k, v in report["sizes"].items()))
    if report["problems"]:
        con.print(f"[bold red]{len(report['problems'])} problem(s):")
        for p in report["problems"]:
            con.print(f"  {p.get('severity', 'error')}: {p['file']}: {p['problem']}", markup=False)
    else:
        con.print("[green]no problems found")


# ---------------------------------------------------------------- models / recipes
@main.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(as_json: bool) -> None:
    """List the registered models with their parameter counts."""
    from blastscope.models import create_model, list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append({"name": name, "parameters": params, "trainable": trainable, "input_size": list(info.input_size), "paper": info.paper})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    t = Table(title="Registered models")
    for col in ("model", "parameters", "trainable", "input", "paper"):
        t.add_column(col, justify="right" if col in ("parameters", "trainable") else "left")
    for r in rows:
        t.add_row(r["name"], f"{r['parameters']:,}", f"{r['trainable']:,}", "x".join(map(str, r["input_size"])), r["paper"])
    _console().print(t)


@main.command("recipes")
def recipes_cmd() -> None:
    """List the shipped recipes."""
    from blastscope.config import list_recipes, load_recipe

    for name in list_recipes():
        raw = load_recipe(name)
        click.echo(f"{name:24s} {raw.get('paper', '')}  profiles: {', '.join(raw.get('profiles', {}) or [])}")


# ---------------------------------------------------------------- cv
def _load_index(data_dir: Path | None, config, layout: str, subjects_csv):
    from blastscope.data.readers import read_dataset
    from blastscope.data.synth import ensure_synthetic

    if data_dir is None:
        data_dir = ensure_synthetic(config.data.synthetic)
        click.echo(f"data: built-in synthetic C-NMC ({config.data.synthetic}) at {data_dir}", err=True)
    return read_dataset(data_dir, layout=layout, subjects_csv=subjects_csv, class_map=config.data.class_map), data_dir


@main.command("cv")
@click.argument("recipe")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Data folder (any supported layout). Default: the built-in synthetic C-NMC.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run folder (default runs/<recipe>[-<profile>]).")
@click.option("--profile", default=None, help="Recipe profile, e.g. quick.")
@click.option("--set", "overrides", multiple=True, help="Override a config value: key.sub=value (repeatable).")
@click.option("--fold", "folds", type=int, multiple=True, help="Run only this fold (1-based; repeatable). Merge later with `blastscope aggregate`.")
@click.option("--grouping", type=click.Choice(["subject", "image"]), default=None,
              help="image: explicit, optimistic image-level grouping for data without subject ids.")
@click.option("--layout", type=click.Choice(["auto", "cnmc", "all-idb1", "all-idb2", "folder"]), default="auto")
@click.option("--subjects-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of tables.")
def cv_cmd(recipe, data_dir, out, profile, overrides, folds, grouping, layout, subjects_csv, as_json) -> None:
    """Subject-level cross-validation of RECIPE: one model per fold, majority vote on held-out data."""
    from blastscope.config import ConfigError, resolve_config
    from blastscope.data.index import IndexError_
    from blastscope.evaluation.aggregate import aggregate_run
    from blastscope.evaluation.cross_validation import RunFolderError, run_cv

    overrides = list(overrides)
    if grouping == "image":
        overrides += ["data.grouping=image", "data.fold_mode=image"]
    try:
        config = resolve_config(recipe, profile, overrides)
        index, data_dir = _load_index(data_dir, config, layout, subjects_csv)
    except (ConfigError, IndexError_) as e:
        _fail(str(e))
    out = out or Path("runs") / (config.recipe + (f"-{profile}" if profile else ""))
    t0 = time.perf_counter()
    try:
        run_cv(config, index, out, folds=[f - 1 for f in folds] or None, progress=_bar)
    except (ConfigError, IndexError_, RunFolderError, ValueError) as e:
        _fail(str(e))
    elapsed = time.perf_counter() - t0
    if folds:
        click.echo(f"fold(s) {list(folds)} done in {elapsed:.0f} s; when all folds are done: blastscope aggregate {out}")
        return
    metrics = aggregate_run(out)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        from blastscope.reports.tables import print_run_tables

        print_run_tables(metrics, _console())
        click.echo(f"run folder: {out}  ({elapsed:.0f} s)")


@main.command("aggregate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def aggregate_cmd(run_dir: Path, as_json: bool) -> None:
    """Merge the folds of RUN_DIR (e.g. run as separate --fold jobs) into metrics.json and tables."""
    from blastscope.evaluation.aggregate import IncompleteRunError, aggregate_run

    try:
        metrics = aggregate_run(run_dir)
    except IncompleteRunError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        from blastscope.reports.tables import print_run_tables

        print_run_tables(metrics, _console())


if __name__ == "__main__":
    main()
