"""The workstation's SQLite database: users, sessions, cases, cells, decisions and prediction jobs.

One file (``--db``), WAL mode (readers never wait for the prediction worker), foreign keys on, the
schema version in ``PRAGMA user_version`` (a newer file is refused, an older one migrated). Each
connection is short-lived and belongs to one thread. Nothing is ever deleted: a decision is undone
by a newer decision that points at the one it replaces, and a signed-out case is locked.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["SCHEMA_VERSION", "Database", "DatabaseError"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL CHECK (role IN ('reviewer', 'admin')),
    password TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE sessions (
    token TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), csrf TEXT NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL);
CREATE TABLE cases (
    id INTEGER PRIMARY KEY, sample_id TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    created_by INTEGER NOT NULL REFERENCES users(id), created REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'signed')),
    signed_by INTEGER REFERENCES users(id), signed_at REAL, bundle_hash TEXT NOT NULL);
CREATE TABLE cells (
    id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases(id), name TEXT NOT NULL,
    sha256 TEXT NOT NULL, data BLOB NOT NULL, added REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'error')),
    error TEXT NOT NULL DEFAULT '', result TEXT);
CREATE INDEX cells_case ON cells(case_id);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY, cell_id INTEGER NOT NULL REFERENCES cells(id), user_id INTEGER NOT NULL REFERENCES users(id),
    label TEXT NOT NULL, model_label TEXT NOT NULL, bundle_hash TEXT NOT NULL, time REAL NOT NULL,
    replaces INTEGER REFERENCES decisions(id));
CREATE INDEX decisions_cell ON decisions(cell_id);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases(id),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', updated REAL NOT NULL);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, case_id INTEGER REFERENCES cases(id), user_id INTEGER REFERENCES users(id),
    kind TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', time REAL NOT NULL);
"""


class DatabaseError(RuntimeError):
    """The database file cannot be used (another program's file, or a newer schema)."""


class Database:
    """The workstation database at ``path`` (created with the schema when absent)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                version = con.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if version == 0 and not tables:  # one transaction: a half-made schema is never left behind
                    con.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
                    con.execute("PRAGMA journal_mode=WAL")  # persistent: readers never wait for the worker
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            raise DatabaseError(f"{self.path}: not a usable SQLite database ({e})") from None
        if not (version == 0 and not tables):
            if version > SCHEMA_VERSION:
                raise DatabaseError(f"{self.path}: schema version {version} is newer than this blastscope reads ({SCHEMA_VERSION})")
            if version == 0:
                raise DatabaseError(f"{self.path}: not a blastscope workstation database (tables {sorted(tables)})")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction: committed on success, rolled back on an exception."""
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise DatabaseError(f"{self.path}: cannot open the database ({e})") from None
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if "file is not a database" in str(e) or "malformed" in str(e):
                raise DatabaseError(f"{self.path}: not a usable SQLite database ({e})") from None
            raise
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def event(self, con: sqlite3.Connection, case_id: int | None, user_id: int | None, kind: str, **detail) -> None:
        con.execute("INSERT INTO events (case_id, user_id, kind, detail, time) VALUES (?, ?, ?, ?, ?)",
                    (case_id, user_id, kind, json.dumps(detail), time.time()))
