"""The ``blastscope`` command line. Only the CLI configures logging and draws progress bars.

Each command group lives in its own module of this package and registers itself on ``main``.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

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

    # Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
    return Console(width=None if sys.stdout.isatty() else 160)


_CONTROL = None


def terminal_safe(text: object) -> str:
    """``text`` with terminal escape sequences and other control characters (but newlines and tabs)
    removed, for names echoed to a terminal: a file or subject name must not move the cursor,
    recolour the screen or hide what follows. C1 controls (U+0080-U+009F: CSI, OSC, DCS, ...) go
    too, as 8-bit terminals read them like their ESC forms."""
    global _CONTROL
    import re

    if _CONTROL is None:
        _CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
    return _CONTROL.sub("", str(text))


def user_text(text: object):
    """A ``rich.text.Text`` of a user string (subject id, file name): shown literally, never read as
    rich markup (``[/]`` or ``[link=...]``), and with escape sequences removed."""
    from rich.text import Text

    return Text(terminal_safe(text))


def threads_option(fn):
    """``--threads N``: threads for PyTorch, OpenCV and onnxruntime (default: one per physical core
    this process may use; see :mod:`blastscope.engine.threads`)."""
    def apply(ctx, _param, value):
        from blastscope.engine.threads import configure_threads

        return configure_threads(value)

    return click.option("--threads", type=click.IntRange(min=1), default=None, callback=apply, expose_value=True,
                        help="Threads for PyTorch, OpenCV and onnxruntime (default: one per physical core available).")(fn)


def _fail(message: str) -> None:
    click.echo(f"error: {terminal_safe(message)}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """The command group: an operating-system error that reaches it (a read-only or full ``--out``
    folder, a path through a file, a folder deleted mid-run) becomes one line naming the file and
    the problem, exit status 2, instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OSError as e:
            where = e.filename if e.filename is not None else "(file system)"
            click.echo(f"error: {terminal_safe(where)}: {e.strerror or e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blastscope")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """blastscope: leukemia cell-image classification (SDCT-AuxNet-theta, LeukoNet, Spike-PCA-ResNet, LeukemiaNet)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose == 0:
        # Long runs people can follow: a summary line per finished fold always, and under nohup,
        # SLURM or a pipe (no progress bars to watch) one line per epoch as well.
        logging.getLogger("blastscope.evaluation.cross_validation").setLevel(logging.INFO)
        if not sys.stderr.isatty():
            logging.getLogger("blastscope.engine.trainer").setLevel(logging.INFO)
    from blastscope.engine.allocator import keep_freed_memory

    keep_freed_memory()  # reuse freed blocks instead of page-faulting fresh ones every step



def _register() -> None:
    # Importing a command module registers its commands on ``main``.
    from blastscope.cli import bench, bundle, data, expand, methods, report, serve, train  # noqa: F401


_register()
