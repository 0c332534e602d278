"""The dataset store: one SQLite database (WAL) per dataset folder, model files optional.

Layout of a dataset folder::

    DIR/perfsage.sqlite        models, duplicates, failures, labels, meta
    DIR/models/ab/abcd....tflite   only with --keep-files; named by the SHA-256 of the bytes

A model row keeps the configuration that rebuilds its bytes (the builder is deterministic),
so a dataset of 134,912 models needs no model files. Every write happens in a transaction;
a killed job leaves the database as of its last commit, and model files are written under a
temporary name and renamed, so no half-written file is ever taken for a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfsage.errors import PerfSageError

DB_NAME = "perfsage.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    space TEXT NOT NULL,
    seed INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    config TEXT NOT NULL,
    graph_hash TEXT NOT NULL UNIQUE,
    model_sha256 TEXT NOT NULL,
    file TEXT,
    bytes INTEGER NOT NULL,
    macs INTEGER NOT NULL,
    params INTEGER NOT NULL,
    ops INTEGER NOT NULL,
    created REAL NOT NULL,
    UNIQUE (space, seed, idx)
);
CREATE TABLE IF NOT EXISTS duplicates (
    space TEXT NOT NULL, seed INTEGER NOT NULL, idx INTEGER NOT NULL,
    graph_hash TEXT NOT NULL,
    PRIMARY KEY (space, seed, idx)
);
CREATE TABLE IF NOT EXISTS failures (
    space TEXT NOT NULL, seed INTEGER NOT NULL, idx INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (space, seed, idx)
);
CREATE TABLE IF NOT EXISTS labels (
    model_id INTEGER NOT NULL REFERENCES models (id),
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT,
    message TEXT,
    tool_version TEXT,
    settings_hash TEXT,
    wall_s REAL,
    created REAL NOT NULL,
    PRIMARY KEY (model_id, target)
);
"""


class DatasetError(PerfSageError):
    """A dataset folder is missing, not a dataset, or from an incompatible version."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One generated model as the store keeps it."""

    space: str
    seed: int
    idx: int
    config: dict[str, Any]
    graph_hash: str
    model_sha256: str
    bytes: int
    macs: int
    params: int
    ops: int
    file: str | None = None


class Store:
    """SQLite-backed dataset store. Use as a context manager or call :meth:`close`."""

    def __init__(self, folder: str | os.PathLike[str], *, create: bool = False) -> None:
        self.folder = Path(folder)
        path = self.folder / DB_NAME
        if not path.exists():
            if not create:
                raise DatasetError(f"{self.folder}: not a PerfSAGE dataset (no {DB_NAME}); "
                                   "create one with `perfsage dataset generate`")
            self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"{path}: cannot open the dataset database ({exc})") from None
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise DatasetError(f"{path}: dataset schema version {version}; this PerfSAGE "
                               f"reads version {SCHEMA_VERSION}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    # -- metadata -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A metadata value, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- generation ---------------------------------------------------------------------

    def done_indices(self, space: str, seed: int) -> set[int]:
        """Indices already handled for (space, seed): stored, duplicate or failed."""
        rows = self.db.execute(
            "SELECT idx FROM models WHERE space = ?1 AND seed = ?2 "
            "UNION SELECT idx FROM duplicates WHERE space = ?1 AND seed = ?2 "
            "UNION SELECT idx FROM failures WHERE space = ?1 AND seed = ?2",
            (space, seed))
        return {r[0] for r in rows}

    def count(self, space: str | None = None, seed: int | None = None) -> int:
        """Number of stored (unique) models, optionally for one space and seed."""
        sql, args = "SELECT COUNT(*) FROM models WHERE 1", []
        if space is not None:
            sql, args = sql + " AND space = ?", [*args, space]
        if seed is not None:
            sql, args = sql + " AND seed = ?", [*args, seed]
        return self.db.execute(sql, args).fetchone()[0]

    def add_batch(self, records: Iterable[ModelRecord],
                  failures: Iterable[tuple[str, int, int, str]] = ()) -> tuple[int, int]:
        """Store models in one transaction; returns (added, duplicates).

        A model whose graph hash is already stored is recorded as a duplicate instead.
        """
        added = dups = 0
        now = time.time()
        with self.transaction():
            for r in records:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO models (space, seed, idx, config, graph_hash, "
                    "model_sha256, file, bytes, macs, params, ops, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.space, r.seed, r.idx, json.dumps(r.config, separators=(",", ":")),
                     r.graph_hash, r.model_sha256, r.file, r.bytes, r.macs, r.params, r.ops,
                     now))
                if cur.rowcount:
                    added += 1
                else:
                    dups += 1
                    self.db.execute("INSERT OR IGNORE INTO duplicates VALUES (?, ?, ?, ?)",
                                    (r.space, r.seed, r.idx, r.graph_hash))
            self.db.executemany("INSERT OR IGNORE INTO failures VALUES (?, ?, ?, ?)",
                                list(failures))
        return added, dups

    def transaction(self) -> _Transaction:
        """A write transaction (BEGIN IMMEDIATE); commits on success, rolls back on error."""
        return _Transaction(self.db)

    # -- reading ------------------------------------------------------------------------

    def models(self, space: str | None = None) -> list[dict[str, Any]]:
        """Every stored model row as a dict (config parsed), in id order."""
        sql = "SELECT * FROM models" + (" WHERE space = ?" if space else "") + " ORDER BY id"
        cur = self.db.execute(sql, (space,) if space else ())
        names = [d[0] for d in cur.description]
        rows = []
        for values in cur:
            row = dict(zip(names, values, strict=True))
            row["config"] = json.loads(row["config"])
            rows.append(row)
        return rows

    def model_bytes(self, model_id: int) -> bytes:
        """A stored model's .tflite bytes: from its file if kept, else rebuilt from config."""
        row = self.db.execute("SELECT space, config, model_sha256, file FROM models "
                              "WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            raise DatasetError(f"{self.folder}: no model with id {model_id}")
        space, config, sha, file = row
        if file and (self.folder / file).exists():
            data = (self.folder / file).read_bytes()
        else:
            from perfsage.spaces import get_space

            data = get_space(space).build(json.loads(config))
        if hashlib.sha256(data).hexdigest() != sha:
            raise DatasetError(f"{self.folder}: model {model_id} does not rebuild to the bytes "
                               "it was generated with (builder changed?); regenerate the dataset")
        return data

    def counts_by_space(self) -> dict[str, dict[str, int]]:
        """Per space: models, duplicates skipped, failures."""
        out: dict[str, dict[str, int]] = {}
        for table, key in (("models", "models"), ("duplicates", "duplicates"),
                           ("failures", "failures")):
            for space, n in self.db.execute(f"SELECT space, COUNT(*) FROM {table} GROUP BY space"):
                out.setdefault(space, {"models": 0, "duplicates": 0, "failures": 0})[key] = n
        return out


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *rest) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def write_model_file(folder: Path, data: bytes, sha256: str) -> str:
    """Write model bytes content-addressed (tmp file + rename); returns the relative path."""
    relative = Path("models") / sha256[:2] / f"{sha256}.tflite"
    path = folder / relative
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return str(relative)
