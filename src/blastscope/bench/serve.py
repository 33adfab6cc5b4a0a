"""The lab workstation's case: from uploading a patient's cells to every cell shown.

A real uvicorn server on 127.0.0.1 (in a thread of the benchmark process) with a fresh database;
``serve_cells`` cells (the C-NMC sample cells under distinct names) are uploaded over HTTP in
requests of 100, the case is polled until every cell is predicted, then the case page (every cell
shown) is fetched. The reference is the same cells predicted by ``Predictor.predict_files`` alone
(decode, every fold model, vote), so the ratio is the share of the case the model itself takes.
"""
from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

from blastscope.bench.result import CaseResult

__all__ = ["run_serve"]


def run_serve(bundle: Path, paths: list[Path], n_cells: int) -> CaseResult:
    import httpx
    import uvicorn

    from blastscope.inference.predictor import Predictor
    from blastscope.serve.app import create_app
    from blastscope.serve.db import Database
    from blastscope.serve.service import Service

    files = [(f"{i:04d}_{paths[i % len(paths)].name}", paths[i % len(paths)].read_bytes()) for i in range(n_cells)]
    with tempfile.TemporaryDirectory(prefix="blastscope-serve-bench-") as tmp:
        db = Path(tmp) / "lab.sqlite"
        Service(Database(db), predictor=None).add_user("bench", "reviewer", "bench-password")
        app = create_app(bundle, db)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        try:
            while not server.started:
                time.sleep(0.05)
            with httpx.Client(base_url=base, timeout=120) as c:
                token = c.post("/api/login", json={"name": "bench", "password": "bench-password"}).json()["token"]
                h = {"Authorization": f"Bearer {token}"}
                c.post("/login", data={"name": "bench", "password": "bench-password"})
                case = c.post("/api/cases", json={"sample_id": "bench"}, headers=h).json()["id"]
                t0 = time.perf_counter()
                for start in range(0, n_cells, 100):
                    part = [("files", f) for f in files[start:start + 100]]
                    c.post(f"/api/cases/{case}/cells", files=part, headers=h).raise_for_status()
                while not c.get(f"/cases/{case}/progress").json()["done"]:
                    time.sleep(0.02)
                page = c.get(f"/cases/{case}")
                seconds = time.perf_counter() - t0
                shown = page.text.count('class="cell ')
        finally:
            server.should_exit = True
            thread.join(timeout=30)
        folder = Path(tmp) / "cells"
        folder.mkdir()
        for name, data in files:
            (folder / name).write_bytes(data)
        predictor = Predictor(bundle)
        t0 = time.perf_counter()
        predictor.predict_files(sorted(folder.iterdir()))
        reference = time.perf_counter() - t0
    return CaseResult("serve_case", f"Workstation: {n_cells}-cell case, upload to every cell shown (vs predict alone)", "s",
                      seconds, reference, higher_is_better=False, target="<= 10 s", met=seconds <= 10.0 and shown == n_cells,
                      agreement={"cells_shown": shown, "ok": shown == n_cells},
                      notes=f"ratio < 1: the share of the case the model takes ({reference:.1f} s of {seconds:.1f} s)",
                      extra={"bundle": str(bundle), "cells": n_cells})
