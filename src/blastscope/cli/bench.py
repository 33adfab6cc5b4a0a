"""`blastscope bench`: the performance benchmark (optimised vs reference paths, with ratios)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from blastscope.bench import GROUPS
from blastscope.cli import _console, _fail, main, threads_option


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "fraction":
        return f"{value:.2f}"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "GB":
        return f"{value:.2f} GB"
    if unit == "hours":
        return f"{value:,.1f} h"
    return f"{value:,.1f} {unit}"


def _table(result: dict):
    from rich.table import Table

    t = Table(title="blastscope bench" + (" --quick" if result.get("quick") else ""))
    for col, justify in (("case", "left"), ("optimised", "right"), ("reference", "right"), ("ratio", "right"),
                         ("target", "left"), ("met", "center"), ("agree", "center")):
        t.add_column(col, justify=justify)
    for c in result["cases"]:
        if c["skipped"]:
            t.add_row(c["title"], "-", "-", "-", c["target"], "-", "-")
            continue
        ratio = f"{c['ratio']:.2f}x" if c["ratio"] is not None else "-"
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[c["met"]]
        agree = "" if c["agreement"] is None else ("[green]ok[/]" if c["agreement"]["ok"] else "[red]NO[/]")
        t.add_row(c["title"], _fmt(c["optimised"], c["unit"]), _fmt(c["reference"], c["unit"]), ratio,
                  c["target"], met, agree)
    return t


@main.command("bench")
@click.option("--quick", is_flag=True, help="Fewer repeats and smaller side cases: under two minutes on 2 cores.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as JSON to this file.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of 450x450 C-NMC cells for the data-pipeline cases (default ../shared/data/cnmc-samples/labeled).")
@click.option("--gpu-tflops", type=float, default=None, help="Sustained GPU float32 rate for the protocol estimate (default 10).")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Model bundle for the workstation case (group 'serve'; without it the case is skipped).")
@click.option("--only", "only", multiple=True, type=click.Choice(GROUPS),
              help="Run only this group of cases (repeatable; the data-waiting share needs 'training' too).")
@click.option("--device", default="auto", show_default=True,
              help="GPU for the 'gpu' group: auto (the first CUDA GPU, else skipped), cuda, cuda:N, or cpu (skip it).")
@threads_option
def bench_cmd(quick: bool, json_path: Path | None, data_dir: Path | None, gpu_tflops: float | None,
              bundle: Path | None, only: tuple[str, ...], device: str, threads: int) -> None:
    """Measure training, inference, data, DCT, latency coding, SVM and memory against plain references."""
    from blastscope.bench import BenchConfig, run_benchmarks

    console = _console()
    cfg = BenchConfig.quick() if quick else BenchConfig.full()
    from blastscope.engine.device import DeviceError, resolve_device

    try:
        resolve_device(device)  # a GPU this machine lacks is refused before any measurement
    except DeviceError as e:
        _fail(str(e))
    changes = {"device": device}
    if data_dir is not None:
        changes["data_dir"] = data_dir
    if gpu_tflops is not None:
        changes["gpu_tflops"] = gpu_tflops
    if bundle is not None:
        changes["bundle"] = bundle
    try:
        cfg = replace(cfg, **changes)
    except ValueError as e:
        _fail(str(e))
    with console.status("benchmark") as status:
        result = run_benchmarks(quick, config=cfg, progress=lambda name: status.update(f"benchmark: {name}"),
                                only=only or None)
    result["quick"] = quick
    m = result["machine"]
    load = result["load_average"]
    console.print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads, "
                  f"{m['cpu_capability']}); sgemm {result['sgemm_gflops']:.1f} GFLOP/s; "
                  f"{result['seconds']:.0f} s; load average {load['start']} -> {load['end']}")
    console.print(_table(result))
    for c in result["cases"]:
        if c["skipped"]:
            console.print(f"[yellow]skipped[/] {c['name']}: {c['skipped']}")
        elif c["notes"]:
            console.print(f"[dim]{c['name']}: {c['notes']}[/]")
    start = (load["start"] or [0.0])[0]
    if m["cores"] and start > 0.5 * m["cores"]:
        console.print(f"[yellow]the machine was busy (load {start} on {m['cores']} cores): timings are noisy[/]")
    if json_path is not None:
        from blastscope.engine.atomic import atomic_write_text

        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(result, indent=2, default=str) + "\n")
        console.print(f"results written to {json_path}")
