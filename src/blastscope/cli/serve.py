"""`blastscope serve`: the lab workstation (web pages and JSON API) over one model bundle."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from blastscope.cli import _fail, main, threads_option


@main.command("serve")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("blastscope-lab.sqlite"),
              show_default=True, help="The SQLite database of cases, cells, decisions and users.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; the default serves this machine only.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--add-user", "add_user", default=None, help="Add a local account NAME (password from --password-stdin or a prompt), then exit.")
@click.option("--role", type=click.Choice(["reviewer", "admin"]), default="reviewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the new user's password from standard input.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="onnx: predict with onnxruntime (a bundle exported with --onnx; faster on a CPU; heat maps still "
                   "need PyTorch and captum).")
@click.option("--precision", type=click.Choice(["auto", "float32", "int8"]), default="auto", show_default=True,
              help="int8 of `export --int8` for the chosen backend (auto: where the bundle has accepted it) or float32.")
@threads_option
def serve_cmd(bundle: Path, db_path: Path, host: str, port: int, add_user: str | None, role: str, password_stdin: bool,
              backend: str, precision: str, threads: int) -> None:
    """Serve the lab workstation for BUNDLE: upload a patient's cells, review the flagged ones, sign out the case."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        _fail("blastscope serve needs the serve extra: pip install 'blastscope[serve]'")
    from blastscope.inference.manifest import BundleError
    from blastscope.serve.db import Database, DatabaseError
    from blastscope.serve.service import Service, ServiceError

    if add_user is not None:
        password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt("password", hide_input=True,
                                                                                          confirmation_prompt=True)
        try:
            Service(Database(db_path), predictor=None).add_user(add_user, role, password)
        except (ServiceError, DatabaseError) as e:
            _fail(getattr(e, "message", str(e)))
        click.echo(f"user {add_user} ({role}) added to {db_path}")
        return
    from blastscope.serve.app import create_app

    from blastscope.inference.predictor import Predictor

    try:
        predictor = Predictor(bundle, backend=backend, precision=precision)
        app = create_app(bundle, db_path, predictor=predictor)
    except (BundleError, DatabaseError, ValueError) as e:
        _fail(str(e))
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}: other machines can reach this workstation", err=True)
    click.echo(f"blastscope workstation on http://{host}:{port}/ (database {db_path}; predicting with {backend}"
               f", {predictor.precision}); API docs at /docs")
    uvicorn.run(app, host=host, port=port, log_level="warning")
