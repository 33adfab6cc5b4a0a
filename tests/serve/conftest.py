"""Fixtures of the lab workstation tests: a database with two users, a TestClient app, real cells."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "root": "root-password"}


def sample_files() -> list[Path]:
    if not SAMPLES.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {SAMPLES}")
    return sorted(SAMPLES.glob("*.bmp"))


def make_users(db_path: Path) -> None:
    from blastscope.serve.db import Database
    from blastscope.serve.service import Service

    service = Service(Database(db_path), predictor=None)
    service.add_user("alice", "reviewer", PASSWORDS["alice"])
    service.add_user("bob", "reviewer", PASSWORDS["bob"])
    service.add_user("root", "admin", PASSWORDS["root"])


@pytest.fixture()
def lab(tiny_bundle, tmp_path):
    """(TestClient, app) of a fresh database; the worker runs in the background."""
    from fastapi.testclient import TestClient

    from blastscope.serve.app import create_app
    from blastscope.serve.uploads import Limits

    db = tmp_path / "lab.sqlite"
    make_users(db)
    app = create_app(tiny_bundle, db, limits=Limits(max_file_bytes=2_000_000, max_request_bytes=8_000_000, max_files=40,
                                                    max_case_cells=30))
    with TestClient(app) as client:
        yield client, app


def token(client, name: str = "alice") -> dict:
    r = client.post("/api/login", json={"name": name, "password": PASSWORDS[name]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def wait_done(client, case_id: int, headers: dict, timeout: float = 60.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        case = client.get(f"/api/cases/{case_id}", headers=headers).json()
        if case["progress"]["done"]:
            return case
        time.sleep(0.05)
    raise AssertionError(f"case {case_id} not predicted within {timeout} s")
