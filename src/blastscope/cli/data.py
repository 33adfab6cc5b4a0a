"""`blastscope data ...`: synthesise and check data sets."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from blastscope.cli import _bar, _console, _fail, main


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
@click.option("--grouping", type=click.Choice(["auto", "subject", "image"]), default="auto", show_default=True,
              help="As `cv --grouping`; auto: subject-level when the data has subject ids, else image-level.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def data_check(root: Path, layout: str, subjects_csv, grouping: str, as_json: bool) -> None:
    """Check a data folder: layout, counts per class/subject/fold, and every problem at once.

    It makes the checks `blastscope cv` makes (what cv refuses is an error here, what it warns
    about a warning) and one more: identical pixels in files whose bytes differ. Exit status 1
    when any problem is an error.
    """
    from blastscope.data.check import check_dataset

    with _bar(desc="reading images") as bar:
        report = check_dataset(root, layout, subjects_csv, progress=bar.update, grouping=grouping)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_check(report)
    sys.exit(0 if report["ok"] else 1)


def _print_check(report: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{escape(report['root'])}[/bold]  layout: {report['layout']}  grouping: {report['grouping']}  "
              f"images: {report['images']}")
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


