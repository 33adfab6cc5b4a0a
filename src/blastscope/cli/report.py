"""`blastscope report` and `blastscope compare`."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from blastscope.cli import _console, _fail, main


@main.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.html and figures/ (default RUN_DIR/report).")
@click.option("--no-artefacts", is_flag=True, help="Do not compute model activations (Figs. 4 and 14); the report says so.")
@click.option("--refresh-artefacts", is_flag=True, help="Recompute model activations even if they are up to date.")
def report_cmd(run_dir: Path, out_dir: Path | None, no_artefacts: bool, refresh_artefacts: bool) -> None:
    """Write a self-contained HTML report (images embedded) of RUN_DIR, plus its PNG figures."""
    from blastscope.reports.html import build_report
    from blastscope.reports.run_data import ReportError

    t0 = time.perf_counter()
    if not (run_dir / "run.json").exists():
        _fail(f"{run_dir}: not a run folder (no run.json); run `blastscope cv` first")
    if not (run_dir / "metrics.json").exists():
        from blastscope.evaluation.aggregate import IncompleteRunError, aggregate_run

        click.echo("metrics.json missing: aggregating the finished folds first", err=True)
        try:
            aggregate_run(run_dir, require_complete=False)
        except IncompleteRunError as e:
            click.echo(f"warning: {e}", err=True)
    if not no_artefacts:
        from blastscope.engine.artefacts import write_report_artefacts

        try:
            write_report_artefacts(run_dir, force=refresh_artefacts)
        except Exception as e:  # the report still renders and states what is missing
            click.echo(f"warning: model activations not computed ({type(e).__name__}: {e})", err=True)
    try:
        path = build_report(run_dir, out_dir)
    except ReportError as e:
        _fail(str(e))
    n = len(list((path.parent / "figures").glob("*.png")))
    click.echo(f"report: {path} ({n} figures, {time.perf_counter() - t0:.1f} s)")


@main.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, help="Only these sets (held-out set names or 'oof'; repeatable).")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the table as CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare_cmd(run_dirs: tuple[Path, ...], sets: tuple[str, ...], csv_out: Path | None, as_json: bool) -> None:
    """One table of the same metrics across RUN_DIRS; marks differing folds and image-level runs."""
    from blastscope.reports.compare import compare_runs, comparison_table, paired_table, paired_tests
    from blastscope.reports.run_data import ReportError

    try:
        cmp = compare_runs(list(run_dirs), list(sets) or None)
        tests = paired_tests(list(run_dirs), list(sets) or None)
    except (ReportError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if csv_out is not None:
        from blastscope.engine.atomic import atomic_write_csv

        atomic_write_csv(csv_out, cmp.rows)
    if as_json:
        paired = tests.astype(object).where(tests.notna(), None).to_dict("records")
        click.echo(json.dumps({"rows": cmp.rows.to_dict("records"), "paired_tests": paired, "fold_groups": cmp.groups,
                               "notes": cmp.notes}, indent=2))
        return
    console = _console()
    console.print(comparison_table(cmp))
    if len(tests):
        console.print(paired_table(tests))
    for label, group in cmp.groups.items():
        console.print(f"folds {group}: {label}", markup=False)
    for n in cmp.notes:
        console.print(f"note: {n}", markup=False)
