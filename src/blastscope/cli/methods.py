"""`blastscope methods`: the four systems on the same subject folds of one data set, compared."""
from __future__ import annotations

import json
from pathlib import Path

import click

from blastscope.cli import _bar, _console, _fail, main

METHODS = ("sdct_auxnet", "leukonet_stage1", "spike_resnet", "leukemianet")


def method_overrides(recipes: list[str], profile: str | None, extra: list[str]) -> dict[str, list[str]]:
    """Per recipe, the overrides that put it on the first recipe's classes, positive class, folds
    and seed (so every method is cross-validated on the same subject folds), then ``extra``."""
    from blastscope.config import resolve_config

    first = resolve_config(recipes[0], profile, extra)
    d = first.data
    positive = d.positive if isinstance(d.positive, str) else list(d.positive)
    shared = [f"data.classes={json.dumps(list(d.classes))}", f"data.positive={json.dumps(positive)}",
              f"data.folds={d.folds}", f"data.fold_mode={d.fold_mode}", f"data.grouping={d.grouping}",
              f"data.selection={d.selection}", f"data.inner_folds={d.inner_folds}", f"train.seed={first.train.seed}"]
    if d.synthetic is not None:
        shared.append(f"data.synthetic={d.synthetic}")
    return {r: shared + list(extra) for r in recipes}


@main.command("methods")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Data folder (any supported layout). Default: the built-in synthetic C-NMC.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the run folders, one per method (default runs/methods[-<profile>]).")
@click.option("--profile", default=None, help="Recipe profile of every method, e.g. quick.")
@click.option("--recipe", "recipes", multiple=True, help=f"Methods to run (repeatable; default {', '.join(METHODS)}).")
@click.option("--set", "overrides", multiple=True, help="Override a config value of every method: key.sub=value.")
@click.option("--grouping", type=click.Choice(["subject", "image"]), default=None)
@click.option("--layout", type=click.Choice(["auto", "cnmc", "all-idb1", "all-idb2", "folder"]), default="auto")
@click.option("--subjects-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON instead of tables.")
def methods_cmd(data_dir, out, profile, recipes, overrides, grouping, layout, subjects_csv, as_json) -> None:
    """Cross-validate every method on the SAME subject folds of one data set and compare them.

    The first method's classes, positive class, folds and seed are given to every other method
    (LeukemiaNet then runs on two-class data without further overrides). Each method gets its own
    run folder under OUT (interrupted runs resume); OUT/methods.json holds the comparison and the
    paired DeLong / McNemar tests, which the terminal shows as tables.
    """
    from blastscope.cli.train import _load_index
    from blastscope.config import ConfigError, resolve_config
    from blastscope.data.index import IndexError_
    from blastscope.engine.atomic import atomic_write_json
    from blastscope.evaluation.aggregate import aggregate_run
    from blastscope.evaluation.cross_validation import RunFolderError, run_cv
    from blastscope.reports.compare import compare_runs, comparison_table, paired_table, paired_tests

    recipes = list(recipes) or list(METHODS)
    extra = list(overrides)
    if data_dir is not None:
        extra.insert(0, "data.synthetic=null")
    if grouping == "image":
        extra += ["data.grouping=image", "data.fold_mode=image"]
    out = out or Path("runs") / ("methods" + (f"-{profile}" if profile else ""))
    try:
        per_recipe = method_overrides(recipes, profile, extra)
        configs = {r: resolve_config(r, profile, per_recipe[r]) for r in recipes}
        index, data_dir, skipped = _load_index(data_dir, configs[recipes[0]], layout, subjects_csv)
    except (ConfigError, IndexError_) as e:
        _fail(str(e))
    run_dirs = []
    for r in recipes:
        click.echo(f"method {r}: {out / r}", err=True)
        try:
            run_cv(configs[r], index, out / r, progress=_bar, skipped=skipped, data_dir=data_dir)
        except (ConfigError, IndexError_, RunFolderError, ValueError) as e:
            _fail(f"{r}: {e}")
        aggregate_run(out / r)
        run_dirs.append(out / r)
    cmp = compare_runs(run_dirs)
    tests = paired_tests(run_dirs)
    result = {"recipes": recipes, "overrides": per_recipe, "rows": cmp.rows.to_dict("records"),
              "paired_tests": tests.astype(object).where(tests.notna(), None).to_dict("records"),
              "fold_groups": cmp.groups, "notes": cmp.notes}
    atomic_write_json(out / "methods.json", result)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console = _console()
    console.print(comparison_table(cmp))
    if len(tests):
        console.print(paired_table(tests))
    for n in cmp.notes:
        console.print(f"note: {n}", markup=False)
    click.echo(f"methods compared on the same folds: {', '.join(recipes)}; wrote {out / 'methods.json'}")
