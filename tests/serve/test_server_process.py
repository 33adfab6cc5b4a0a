"""A real server process (uvicorn on 127.0.0.1): killed with SIGKILL during a prediction and
restarted, nothing is lost and the job resumes; and a bounded loopback load test."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import PASSWORDS, make_users, sample_files


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, db: Path, port: int, log: Path, chunk: int = 8) -> subprocess.Popen:
    env = {**os.environ, "BLASTSCOPE_PREDICT_CHUNK": str(chunk)}
    proc = subprocess.Popen([sys.executable, "-m", "blastscope", "serve", str(bundle), "--db", str(db), "--port", str(port)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    t0 = time.time()
    while time.time() - t0 < 90:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start within 90 s")


def _login(base: str) -> dict:
    r = httpx.post(f"{base}/api/login", json={"name": "alice", "password": PASSWORDS["alice"]}, timeout=10)
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_killed_during_a_prediction_and_restarted(tiny_bundle, tmp_path):
    db, log, port = tmp_path / "lab.sqlite", tmp_path / "server.log", _port()
    make_users(db)
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tiny_bundle, db, port, log)
    try:
        h = _login(base)
        files = [("files", (p.name, p.read_bytes())) for p in sample_files()]
        first = httpx.post(f"{base}/api/cases", json={"sample_id": "done-before"}, headers=h).json()["id"]
        httpx.post(f"{base}/api/cases/{first}/cells", files=files, headers=h, timeout=60)
        while not httpx.get(f"{base}/api/cases/{first}", headers=h).json()["progress"]["done"]:
            time.sleep(0.05)
        cell = httpx.get(f"{base}/api/cases/{first}", headers=h).json()["cells"][0]
        assert httpx.post(f"{base}/api/cells/{cell['id']}/review", json={"label": "hem"}, headers=h).status_code == 200
        second = httpx.post(f"{base}/api/cases", json={"sample_id": "interrupted"}, headers=h).json()["id"]
        many = [("files", (f"{i:03d}_{p.name}", p.read_bytes())) for i in range(40) for p in sample_files()[:10]][:400]
        for start in range(0, 400, 100):
            assert httpx.post(f"{base}/api/cases/{second}/cells", files=many[start:start + 100], headers=h, timeout=120).json()["added"] == 100
        t0 = time.time()
        while True:  # kill while the job is part-way
            p = httpx.get(f"{base}/api/cases/{second}", headers=h).json()["progress"]
            if 0 < p["predicted"] < p["cells"] or time.time() - t0 > 60:
                break
            time.sleep(0.005)
        assert 0 < p["predicted"] < 400, f"could not catch the job part-way: {p}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        before = p["predicted"]
        proc = start_server(tiny_bundle, db, port, log)
        h = _login(base)
        t0 = time.time()
        while not (case := httpx.get(f"{base}/api/cases/{second}", headers=h).json())["progress"]["done"]:
            assert time.time() - t0 < 120
            time.sleep(0.05)
        assert case["progress"]["predicted"] == 400 and case["progress"]["errors"] == 0
        import sqlite3

        t0 = time.time()
        while True:  # every cell is predicted; the other queued jobs of the case then find nothing left to do
            jobs = sqlite3.connect(db).execute("SELECT state, attempts FROM jobs WHERE case_id = ?", (second,)).fetchall()
            if {s for s, _ in jobs} == {"done"} or time.time() - t0 > 60:
                break
            time.sleep(0.05)
        assert {s for s, _ in jobs} == {"done"} and max(a for _, a in jobs) == 2  # the interrupted job ran again
        assert before > 0
        kept = httpx.get(f"{base}/api/cases/{first}", headers=h).json()
        assert kept["cells"][0]["decision"]["label"] == "hem" and len(kept["decisions"]) == 1
        assert "resuming the prediction" in log.read_text()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_loopback_load(tiny_bundle, tmp_path):
    """8 concurrent clients, each creating a case, uploading 10 cells and reading the case until it is
    predicted, then reading it 5 more times: no errors; p50/p99 latency printed."""
    from concurrent.futures import ThreadPoolExecutor

    db, log, port = tmp_path / "lab.sqlite", tmp_path / "server.log", _port()
    make_users(db)
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tiny_bundle, db, port, log, chunk=64)
    files = [("files", (p.name, p.read_bytes())) for p in sample_files()]
    latencies, errors = [], []

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            h = {"Authorization": "Bearer " + c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]}).json()["token"]}

            def call(method, url, **kw):
                t = time.perf_counter()
                r = c.request(method, url, headers=h, **kw)
                latencies.append(time.perf_counter() - t)
                if r.status_code >= 400:
                    errors.append((url, r.status_code))
                return r

            case = call("POST", "/api/cases", json={"sample_id": f"load-{i}"}).json()["id"]
            call("POST", f"/api/cases/{case}/cells", files=files)
            t0 = time.time()
            while not call("GET", f"/api/cases/{case}").json()["progress"]["done"] and time.time() - t0 < 60:
                time.sleep(0.05)
            for _ in range(5):
                call("GET", f"/api/cases/{case}")

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    import numpy as np

    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\nloopback load: {len(latencies)} requests from 8 clients, p50 {p50:.0f} ms, p99 {p99:.0f} ms, {len(errors)} errors")
    assert not errors and len(latencies) >= 8 * 9
