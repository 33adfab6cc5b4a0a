"""What the workstation does, for the HTML pages and the JSON API alike (no HTTP here).

Users and sessions (passwords hashed with the standard library's scrypt), cases, cells, the
review log and sign-out. A cell's final label is its latest decision, else the model's answer; a
decision is never changed or deleted: undo is a new decision that ``replaces`` the last one. The
per-patient call is recomputed from the final labels: reviewed cells count with the reviewer's
label; cells still flagged (review, out of domain) and not reviewed are counted apart.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass

import pandas as pd

from blastscope.serve.db import Database
from blastscope.serve.uploads import Limits, expand_uploads

__all__ = ["Service", "ServiceError", "User", "hash_password", "verify_password", "ROLES"]

ROLES = ("reviewer", "admin")
SESSION_SECONDS = 12 * 3600


class ServiceError(Exception):
    """A request that cannot be done: ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str, detail: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail or {}


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex), scrypt with n = 2**14, r = 8, p = 1."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(got.hex(), digest)


class Service:
    """The workstation over one database and one predictor (the bundle's)."""

    def __init__(self, db: Database, predictor, limits: Limits = Limits(), bundle_hash: str = "") -> None:
        self.db, self.predictor, self.limits, self.bundle_hash = db, predictor, limits, bundle_hash

    # ----------------------------------------------------------------------------------- users
    def add_user(self, name: str, role: str, password: str) -> int:
        name = name.strip()
        if not name or len(name) > 64 or any(ord(ch) < 32 for ch in name):
            raise ServiceError(400, "a user name must be 1 to 64 printable characters")
        if role not in ROLES:
            raise ServiceError(400, f"role must be one of {ROLES}, got {role!r}")
        if len(password) < 8:
            raise ServiceError(400, "a password must have at least 8 characters")
        try:
            with self.db.connect() as con:
                cur = con.execute("INSERT INTO users (name, role, password, created) VALUES (?, ?, ?, ?)",
                                  (name, role, hash_password(password), time.time()))
                return int(cur.lastrowid)
        except sqlite3.IntegrityError:
            raise ServiceError(409, f"user {name!r} exists already") from None

    def login(self, name: str, password: str) -> tuple[str, str, User]:
        """(session token, CSRF token, user) or a 401."""
        with self.db.connect() as con:
            row = con.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
            if row is None or not verify_password(password, row["password"]):
                raise ServiceError(401, "unknown user or wrong password")
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            now = time.time()
            con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (token, row["id"], csrf, now, now + SESSION_SECONDS))
            self.db.event(con, None, row["id"], "login")
            return token, csrf, User(row["id"], row["name"], row["role"])

    def session(self, token: str | None) -> tuple[User, str] | None:
        """(user, CSRF token) of a live session, else None."""
        if not token:
            return None
        with self.db.connect() as con:
            row = con.execute("SELECT u.id, u.name, u.role, s.csrf, s.expires FROM sessions s JOIN users u ON u.id = s.user_id "
                              "WHERE s.token = ?", (token,)).fetchone()
        if row is None or row["expires"] < time.time():
            return None
        return User(row["id"], row["name"], row["role"]), row["csrf"]

    def logout(self, token: str) -> None:
        with self.db.connect() as con:
            con.execute("UPDATE sessions SET expires = 0 WHERE token = ?", (token,))

    # ----------------------------------------------------------------------------------- cases
    def create_case(self, user: User, sample_id: str, note: str = "") -> int:
        sample_id = sample_id.strip()
        if not sample_id or len(sample_id) > 128:
            raise ServiceError(400, "a case needs a sample id of 1 to 128 characters")
        if len(note) > 10_000:
            raise ServiceError(400, "the note is longer than 10,000 characters")
        with self.db.connect() as con:
            cur = con.execute("INSERT INTO cases (sample_id, note, created_by, created, bundle_hash) VALUES (?, ?, ?, ?, ?)",
                              (sample_id, note, user.id, time.time(), self.bundle_hash))
            self.db.event(con, cur.lastrowid, user.id, "create", sample_id=sample_id)
            return int(cur.lastrowid)

    def _case(self, con: sqlite3.Connection, case_id: int) -> sqlite3.Row:
        row = con.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
        if row is None:
            raise ServiceError(404, f"no case {case_id}")
        return row

    def _open_case(self, con: sqlite3.Connection, case_id: int) -> sqlite3.Row:
        row = self._case(con, case_id)
        if row["status"] == "signed":
            raise ServiceError(409, f"case {case_id} is signed out and locked")
        return row

    def cases(self) -> list[dict]:
        with self.db.connect() as con:
            rows = con.execute("SELECT c.*, u.name AS creator, (SELECT COUNT(*) FROM cells WHERE case_id = c.id) AS n_cells "
                               "FROM cases c JOIN users u ON u.id = c.created_by ORDER BY c.id DESC").fetchall()
        return [dict(r) for r in rows]

    def add_cells(self, user: User, case_id: int, files: list[tuple[str, bytes]]) -> dict:
        """Store the acceptable image files of ``files`` in the case and queue their prediction."""
        with self.db.connect() as con:
            self._open_case(con, case_id)
            have = con.execute("SELECT COUNT(*) FROM cells WHERE case_id = ?", (case_id,)).fetchone()[0]
        accepted, bad = expand_uploads(files, self.limits, self.limits.max_case_cells - have)
        now = time.time()
        with self.db.connect() as con:
            self._open_case(con, case_id)
            for name, data in accepted:
                con.execute("INSERT INTO cells (case_id, name, sha256, data, added) VALUES (?, ?, ?, ?, ?)",
                            (case_id, name, hashlib.sha256(data).hexdigest(), data, now))
            if accepted:
                pending = con.execute("SELECT COUNT(*) FROM cells WHERE case_id = ? AND status = 'pending'", (case_id,)).fetchone()[0]
                con.execute("INSERT INTO jobs (case_id, state, total, updated) VALUES (?, 'queued', ?, ?)", (case_id, pending, now))
            self.db.event(con, case_id, user.id, "upload", added=len(accepted), bad=len(bad))
        return {"added": len(accepted), "bad": [b.__dict__ for b in bad]}

    def progress(self, case_id: int) -> dict:
        with self.db.connect() as con:
            self._case(con, case_id)
            counts = dict(con.execute("SELECT status, COUNT(*) FROM cells WHERE case_id = ? GROUP BY status", (case_id,)).fetchall())
            job = con.execute("SELECT * FROM jobs WHERE case_id = ? ORDER BY id DESC LIMIT 1", (case_id,)).fetchone()
        total = sum(counts.values())
        return {"cells": total, "predicted": counts.get("ok", 0), "errors": counts.get("error", 0),
                "pending": counts.get("pending", 0), "job": dict(job) if job else None,
                "done": counts.get("pending", 0) == 0}

    def cell_image(self, cell_id: int) -> tuple[str, bytes]:
        with self.db.connect() as con:
            row = con.execute("SELECT name, data FROM cells WHERE id = ?", (cell_id,)).fetchone()
        if row is None:
            raise ServiceError(404, f"no cell {cell_id}")
        return row["name"], row["data"]

    def case(self, case_id: int) -> dict:
        """Everything the case view, the API and the exports show."""
        with self.db.connect() as con:
            case = dict(self._case(con, case_id))
            cells = [dict(r) for r in con.execute("SELECT id, name, sha256, status, error, result FROM cells WHERE case_id = ? "
                                                  "ORDER BY id", (case_id,))]
            decisions = [dict(r) for r in con.execute(
                "SELECT d.*, u.name AS user FROM decisions d JOIN users u ON u.id = d.user_id JOIN cells c ON c.id = d.cell_id "
                "WHERE c.case_id = ? ORDER BY d.id", (case_id,))]
            for key in ("created_by", "signed_by"):
                if case[key] is not None:
                    case[key.replace("_by", "_by_name")] = con.execute("SELECT name FROM users WHERE id = ?", (case[key],)).fetchone()[0]
        latest: dict[int, dict] = {}
        for d in decisions:
            latest[d["cell_id"]] = d
        out_cells = []
        for c in cells:
            result = json.loads(c.pop("result")) if c["result"] else None
            c["result"] = result
            d = latest.get(c["id"])
            c["decision"] = d
            c["final_label"] = d["label"] if d else (result["pred"] if result else None)
            c["flagged"] = bool(result and (result.get("review") or result.get("out_of_domain")))
            c["open_flag"] = c["flagged"] and d is None
            out_cells.append(c)
        case["cells"] = out_cells
        case["decisions"] = decisions
        case["patient"] = self._patient(case["sample_id"], out_cells)
        return case

    def _patient(self, sample_id: str, cells: list[dict]) -> dict:
        from blastscope.inference.subjects import summarise_subjects

        ok = [c for c in cells if c["status"] == "ok"]
        threshold = self.predictor.patient_threshold if self.predictor.patient_threshold is not None else 0.5
        positive = self.predictor.bundle.positive
        if not ok:
            return {"threshold": threshold, "positive": positive, "call": None}
        frame = pd.DataFrame({"subject_id": sample_id, "pred": [c["final_label"] for c in ok],
                              "review": [c["open_flag"] for c in ok]})
        row = summarise_subjects(frame, positive, threshold, count_flagged=False).iloc[0].to_dict()
        row.update(threshold=threshold, positive=positive, reviewed=sum(c["decision"] is not None for c in ok))
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}

    # ---------------------------------------------------------------------------------- review
    def review(self, user: User, cell_id: int, label: str, expected: int | None) -> dict:
        """Record ``label`` for a cell. ``expected``: the id of the latest decision the reviewer saw
        (None: none). If another decision was made since, nothing is stored and a 409 says what it was."""
        if label not in self.predictor.class_names:
            raise ServiceError(400, f"label must be one of {self.predictor.class_names}, got {label!r}")
        with self.db.connect() as con:
            cell = con.execute("SELECT * FROM cells WHERE id = ?", (cell_id,)).fetchone()
            if cell is None:
                raise ServiceError(404, f"no cell {cell_id}")
            self._open_case(con, cell["case_id"])
            if cell["status"] != "ok":
                raise ServiceError(409, f"cell {cell_id} has no prediction yet")
            last = con.execute("SELECT d.*, u.name AS user FROM decisions d JOIN users u ON u.id = d.user_id "
                               "WHERE cell_id = ? ORDER BY d.id DESC LIMIT 1", (cell_id,)).fetchone()
            if (last["id"] if last else None) != expected:
                raise ServiceError(409, f"cell {cell_id} was reviewed meanwhile by {last['user']} as {last['label']!r}; "
                                        "reload and decide again", {"latest": dict(last) if last else None})
            model_label = json.loads(cell["result"])["pred"]
            cur = con.execute("INSERT INTO decisions (cell_id, user_id, label, model_label, bundle_hash, time, replaces) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", (cell_id, user.id, label, model_label, self.bundle_hash,
                                                             time.time(), last["id"] if last else None))
            self.db.event(con, cell["case_id"], user.id, "review", cell=cell_id, label=label)
            return {"decision": int(cur.lastrowid), "cell": cell_id, "label": label, "model_label": model_label,
                    "replaces": last["id"] if last else None}

    def sign_out(self, user: User, case_id: int) -> dict:
        with self.db.connect() as con:
            self._open_case(con, case_id)
            pending = con.execute("SELECT COUNT(*) FROM cells WHERE case_id = ? AND status = 'pending'", (case_id,)).fetchone()[0]
            if pending:
                raise ServiceError(409, f"case {case_id} still has {pending} cells being predicted")
        case = self.case(case_id)
        open_flags = sum(c["open_flag"] for c in case["cells"])
        if open_flags:
            raise ServiceError(409, f"case {case_id} has {open_flags} flagged cells not reviewed yet")
        with self.db.connect() as con:
            con.execute("UPDATE cases SET status = 'signed', signed_by = ?, signed_at = ? WHERE id = ? AND status = 'open'",
                        (user.id, time.time(), case_id))
            self.db.event(con, case_id, user.id, "sign-out", call=case["patient"].get("call"))
        return self.case(case_id)

    def reopen(self, user: User, case_id: int) -> None:
        if user.role != "admin":
            raise ServiceError(403, "only an admin can reopen a signed-out case")
        with self.db.connect() as con:
            self._case(con, case_id)
            con.execute("UPDATE cases SET status = 'open' WHERE id = ?", (case_id,))
            self.db.event(con, case_id, user.id, "reopen")

    # ---------------------------------------------------------------------------------- export
    def export_rows(self, case_id: int) -> tuple[dict, list[dict]]:
        case = self.case(case_id)
        rows = []
        for c in case["cells"]:
            r = c["result"] or {}
            d = c["decision"] or {}
            rows.append({"cell": c["id"], "file": c["name"], "sha256": c["sha256"], "status": c["status"], "error": c["error"],
                         "model_label": r.get("pred", ""), "confidence": r.get("confidence", ""),
                         "answered_by": r.get("answered_by", ""), "agreement": r.get("agreement", ""),
                         "prediction_set": r.get("prediction_set", ""), "out_of_domain": r.get("out_of_domain", ""),
                         "flag_reason": r.get("review_reason", ""), "final_label": c["final_label"] or "",
                         "reviewed_by": d.get("user", ""), "reviewed_at": d.get("time", ""), "bundle_hash": d.get("bundle_hash", "")})
        return case, rows

    def export_csv(self, case_id: int) -> str:
        from blastscope.engine.atomic import spreadsheet_safe

        _, rows = self.export_rows(case_id)
        frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["cell"])
        return spreadsheet_safe(frame).to_csv(index=False, quoting=csv.QUOTE_MINIMAL)

