"""`blastscope models`, `recipes`, `cv`, `aggregate`."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from blastscope.cli import _bar, _console, _fail, main, threads_option


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
def _load_index(data_dir: Path | None, config, layout: str, subjects_csv, skip_invalid: bool = False):
    """(index, data folder, [(file, reason)] the reader left out: only with ``skip_invalid``)."""
    from blastscope.data.cnmc import BadNamesError
    from blastscope.data.index import IndexError_
    from blastscope.data.readers import read_dataset
    from blastscope.data.synth import ensure_synthetic

    if data_dir is None:
        if config.data.synthetic is None:
            raise IndexError_("this configuration has no built-in data (data.synthetic is null); give the data folder with --data")
        data_dir = ensure_synthetic(config.data.synthetic)
        click.echo(f"data: built-in synthetic C-NMC ({config.data.synthetic}) at {data_dir}", err=True)
    problems: list[dict] | None = [] if skip_invalid else None
    try:
        index = read_dataset(data_dir, layout=layout, subjects_csv=subjects_csv, class_map=config.data.class_map, problems=problems)
    except BadNamesError as e:
        raise IndexError_(f"{e}\nrename or remove them, or leave them out with --skip-invalid (listed in RUN/skipped.csv)") from None
    skipped = [(p["file"], p["problem"]) for p in problems or []]
    if skipped:
        click.echo(f"leaving out {len(skipped)} file(s) whose names cannot be indexed (--skip-invalid; see RUN/skipped.csv)", err=True)
    return index, data_dir, skipped


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
@click.option("--skip-invalid", is_flag=True,
              help="Leave out unreadable images and files whose names cannot be indexed (listed in RUN/skipped.csv) instead of stopping.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of tables.")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel training processes on this machine (torch DDP, gloo). Under torchrun the launcher's processes are used.")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N (train.device; default auto: a GPU when PyTorch sees one).")
@threads_option
def cv_cmd(recipe, data_dir, out, profile, overrides, folds, grouping, layout, subjects_csv, skip_invalid, as_json, devices,
           device, threads) -> None:
    """Subject-level cross-validation of RECIPE: one model per fold, majority vote on held-out data."""
    from blastscope.config import ConfigError, resolve_config
    from blastscope.data.index import IndexError_
    from blastscope.engine.distributed import MainProcessError
    from blastscope.evaluation.aggregate import aggregate_run
    from blastscope.evaluation.cross_validation import RunFolderError, run_cv

    overrides = list(overrides)
    if data_dir is not None:
        overrides.insert(0, "data.synthetic=null")  # the run's config.yaml must not claim built-in data
    if grouping == "image":
        overrides += ["data.grouping=image", "data.fold_mode=image"]
    if device is not None:
        overrides.append(f"train.device={device}")
    try:
        config = resolve_config(recipe, profile, overrides)
        from blastscope.engine.device import resolve_device

        from blastscope.engine.distributed import backend_for, launched_by_torchrun

        device_ = resolve_device(config.train.device)  # a device this machine lacks is refused before any work
        backend = backend_for(device_) if devices > 1 or launched_by_torchrun() else "gloo"  # one process: no group
        index, data_dir, skipped = _load_index(data_dir, config, layout, subjects_csv, skip_invalid)
    except (ConfigError, IndexError_, ValueError) as e:
        _fail(str(e))
    out = out or Path("runs") / (config.recipe + (f"-{profile}" if profile else ""))
    t0 = time.perf_counter()
    try:
        from blastscope.engine.distributed import run_data_parallel

        report = run_data_parallel(run_cv, devices, (config, index, out),
                                   {"folds": [f - 1 for f in folds] or None, "progress": _bar, "skip_invalid": skip_invalid,
                                    "skipped": skipped, "data_dir": data_dir},
                                   threads=max(1, threads // devices) if devices > 1 else None, backend=backend)
    except (ConfigError, IndexError_, RunFolderError, ValueError, MainProcessError) as e:
        _fail(str(e))  # MainProcessError: a torchrun rank other than 0, whose rank 0 failed (and says why)
    if not report:  # a torchrun rank other than 0
        return
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

