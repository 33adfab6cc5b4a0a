"""The prediction worker: one background thread that predicts the queued cells of each case.

Jobs live in the database, so nothing is lost when the server stops: at start, a job left
``running`` by a killed server is queued again (its cells already predicted keep their results;
only ``pending`` cells are predicted), up to ``MAX_ATTEMPTS`` times, then marked ``failed`` with
the reason; a failed job is retried by uploading again or with :meth:`Worker.retry`.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np

from blastscope.data.decode import ImageReadError, decode_image
from blastscope.serve.db import Database

__all__ = ["Worker", "MAX_ATTEMPTS"]

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
CHUNK = 64


class Worker:
    """``chunk``: cells per prediction step (each step is committed and moves the progress bar;
    default ``BLASTSCOPE_PREDICT_CHUNK`` or 64)."""

    def __init__(self, db: Database, predictor, poll_seconds: float = 0.2, chunk: int | None = None) -> None:
        import os

        self.db, self.predictor, self.poll = db, predictor, poll_seconds
        self.chunk = max(1, int(chunk or os.environ.get("BLASTSCOPE_PREDICT_CHUNK", CHUNK)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recover()

    def recover(self) -> None:
        """Jobs a killed server left running are queued again (or failed after MAX_ATTEMPTS)."""
        with self.db.connect() as con:
            for job in con.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall():
                if job["attempts"] >= MAX_ATTEMPTS:
                    con.execute("UPDATE jobs SET state = 'failed', error = ?, updated = ? WHERE id = ?",
                                (f"stopped {job['attempts']} times while running", time.time(), job["id"]))
                else:
                    con.execute("UPDATE jobs SET state = 'queued', updated = ? WHERE id = ?", (time.time(), job["id"]))
                    logger.warning("case %d: resuming the prediction interrupted when the server stopped", job["case_id"])

    def retry(self, case_id: int) -> None:
        with self.db.connect() as con:
            con.execute("UPDATE jobs SET state = 'queued', attempts = 0, error = '', updated = ? WHERE case_id = ? "
                        "AND state = 'failed'", (time.time(), case_id))

    def start(self) -> "Worker":
        self._thread = threading.Thread(target=self._loop, name="blastscope-predict", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_once():
                    self._stop.wait(self.poll)
            except Exception:  # the worker must outlive one bad job; the job says why
                logger.exception("prediction worker")
                self._stop.wait(self.poll)

    def run_once(self) -> bool:
        """Run the oldest queued job; False when there was none."""
        with self.db.connect() as con:
            job = con.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
            if job is None:
                return False
            con.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, updated = ? WHERE id = ?", (time.time(), job["id"]))
        try:
            self._predict_case(job["id"], job["case_id"])
        except Exception as e:
            with self.db.connect() as con:
                con.execute("UPDATE jobs SET state = 'failed', error = ?, updated = ? WHERE id = ?",
                            (f"{type(e).__name__}: {e}", time.time(), job["id"]))
            raise
        return True

    def _predict_case(self, job_id: int, case_id: int) -> None:
        while not self._stop.is_set():
            with self.db.connect() as con:
                cells = con.execute("SELECT id, name, data FROM cells WHERE case_id = ? AND status = 'pending' ORDER BY id LIMIT ?",
                                    (case_id, self.chunk)).fetchall()
            if not cells:
                break
            images, ok, errors = [], [], []
            for c in cells:
                try:
                    images.append(self.predictor.preprocess(decode_image(c["data"], c["name"])))
                    ok.append(c)
                except (ImageReadError, ValueError) as e:
                    errors.append((c["id"], getattr(e, "reason", str(e))))
            rows = []
            if ok:
                result = self.predictor.predict_images(np.stack(images))
                rows = self.predictor.cell_rows(result, [c["name"] for c in ok], [""] * len(ok))
            with self.db.connect() as con:
                for c, row in zip(ok, rows):
                    con.execute("UPDATE cells SET status = 'ok', result = ? WHERE id = ?", (json.dumps(_plain(row)), c["id"]))
                for cell_id, reason in errors:
                    con.execute("UPDATE cells SET status = 'error', error = ? WHERE id = ?", (reason, cell_id))
                con.execute("UPDATE jobs SET done = done + ?, updated = ? WHERE id = ?", (len(cells), time.time(), job_id))
        if not self._stop.is_set():
            with self.db.connect() as con:
                con.execute("UPDATE jobs SET state = 'done', updated = ? WHERE id = ?", (time.time(), job_id))


def _plain(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (np.floating, float)):
            v = None if v != v else float(v)
        elif isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, np.bool_):
            v = bool(v)
        out[k] = v
    return out
