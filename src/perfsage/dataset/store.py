"""The dataset store: one SQLite database (WAL) per dataset folder, model files optional.

Layout of a dataset folder::

    DIR/perfsage.sqlite        models, duplicates, failures, labels, claims, meta
    DIR/models/ab/abcd....tflite   only with --keep-files; named by the SHA-256 of the bytes

A model row keeps the configuration that rebuilds its bytes (the builder is deterministic),
so a dataset of 134,912 models needs no model files. Every write happens in a transaction;
a killed job leaves the database as of its last commit, and model files are written under a
temporary name and renamed, so no half-written file is ever taken for a model.

This module is the only one that speaks SQL: the jobs (generate, annotate, export, info)
and the readers on the predictors' side go through the named methods of :class:`Store`.
A store of an older schema is upgraded in place when opened (``_UPGRADES``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfsage.dataset.claims import Claimant
from perfsage.errors import PerfSageError

DB_NAME = "perfsage.sqlite"
SCHEMA_VERSION = 2

#: Columns of the models table, in order: what an export holds of each model.
MODEL_COLUMNS = ("id", "space", "seed", "idx", "config", "graph_hash", "model_sha256", "file",
                 "bytes", "macs", "params", "ops", "created")

#: Read first, for the schema version that says how to read the rest.
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = """
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
    measured_by TEXT,
    PRIMARY KEY (model_id, target)
);
CREATE TABLE IF NOT EXISTS claims (
    model_id INTEGER NOT NULL REFERENCES models (id),
    target TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (model_id, target)
);
"""

#: Statements that take a store from schema version N to N + 1.
_UPGRADES: dict[int, tuple[str, ...]] = {
    # 2: labels name the process that measured them; the claims table (created by _SCHEMA).
    1: ("ALTER TABLE labels ADD COLUMN measured_by TEXT",),
}


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


@dataclass(frozen=True, slots=True)
class Label:
    """One label: a model measured on one target (``metrics`` None unless status is ok)."""

    model_id: int
    target: str
    status: str
    metrics: dict[str, float] | None = None
    message: str | None = None
    tool_version: str | None = None
    settings_hash: str | None = None
    wall_s: float | None = None
    measured_by: str | None = None
    created: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class LabelledModel:
    """A model with an ``ok`` label for one target, as training reads it."""

    id: int
    space: str
    graph_hash: str
    config: dict[str, Any]
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class Claim:
    """A (model, target) pair that a process is measuring."""

    model_id: int
    target: str
    settings_hash: str
    claimed_by: str
    claimed_at: float
    expires_at: float


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
        self._db = self._open(path)

    def _open(self, path: Path) -> sqlite3.Connection:
        """Connect, check the schema version, and create or upgrade the tables."""
        try:
            db = sqlite3.connect(path, timeout=60, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"{path}: cannot open the dataset database ({exc})") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_META)
            if _version(db) > SCHEMA_VERSION:
                raise DatasetError(f"{path}: dataset schema version {_version(db)} is newer than "
                                   f"this PerfSAGE reads ({SCHEMA_VERSION}); upgrade PerfSAGE")
            db.executescript(_SCHEMA)
            if _version(db) != SCHEMA_VERSION:
                with _Transaction(db):  # read again inside: another process may have upgraded
                    for step in range(_version(db) or SCHEMA_VERSION, SCHEMA_VERSION):
                        for statement in _UPGRADES[step]:
                            db.execute(statement)
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                               (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            db.close()
            raise DatasetError(f"{path}: cannot open the dataset database ({exc})") from None
        except DatasetError:
            db.close()
            raise
        return db

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    # -- metadata -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A metadata value, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- generation ---------------------------------------------------------------------

    def done_indices(self, space: str, seed: int) -> set[int]:
        """Indices already handled for (space, seed): stored, duplicate or failed."""
        rows = self._db.execute(
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
        return self._db.execute(sql, args).fetchone()[0]

    def add_batch(self, records: Iterable[ModelRecord],
                  failures: Iterable[tuple[str, int, int, str]] = ()) -> tuple[int, int]:
        """Store models in one transaction; returns (added, duplicates).

        A model whose graph hash is already stored is recorded as a duplicate instead.
        """
        added = dups = 0
        now = time.time()
        with self.transaction():
            for r in records:
                cur = self._db.execute(
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
                    self._db.execute("INSERT OR IGNORE INTO duplicates VALUES (?, ?, ?, ?)",
                                    (r.space, r.seed, r.idx, r.graph_hash))
            self._db.executemany("INSERT OR IGNORE INTO failures VALUES (?, ?, ?, ?)",
                                list(failures))
        return added, dups

    def transaction(self) -> _Transaction:
        """A write transaction (BEGIN IMMEDIATE); commits on success, rolls back on error."""
        return _Transaction(self._db)

    # -- reading ------------------------------------------------------------------------

    def models(self, space: str | None = None) -> list[dict[str, Any]]:
        """Every stored model row as a dict (config parsed), in id order."""
        sql = "SELECT * FROM models" + (" WHERE space = ?" if space else "") + " ORDER BY id"
        cur = self._db.execute(sql, (space,) if space else ())
        names = [d[0] for d in cur.description]
        rows = []
        for values in cur:
            row = dict(zip(names, values, strict=True))
            row["config"] = json.loads(row["config"])
            rows.append(row)
        return rows

    def model_bytes(self, model_id: int) -> bytes:
        """A stored model's .tflite bytes: from its file if kept, else rebuilt from config."""
        row = self._db.execute("SELECT space, config, model_sha256, file FROM models "
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
            for space, n in self._db.execute(f"SELECT space, COUNT(*) FROM {table} GROUP BY space"):
                out.setdefault(space, {"models": 0, "duplicates": 0, "failures": 0})[key] = n
        return out

    def model_table(self, spaces: Sequence[str] | None = None) -> dict[str, list]:
        """The models (of ``spaces``, when given) column by column, raw, in id order.

        Columns are :data:`MODEL_COLUMNS`; ``config`` stays the stored JSON text.
        """
        where = f" WHERE space IN ({', '.join('?' * len(spaces))})" if spaces else ""
        cur = self._db.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM models{where} "
                              "ORDER BY id", list(spaces or []))
        columns: dict[str, list] = {name: [] for name in MODEL_COLUMNS}
        for row in cur:
            for name, value in zip(MODEL_COLUMNS, row, strict=True):
                columns[name].append(value)
        return columns

    def model_sizes(self) -> Iterator[tuple[str, int, int, int]]:
        """(space, MACs, parameters, operators) of every model, in id order."""
        yield from self._db.execute("SELECT space, macs, params, ops FROM models ORDER BY id")

    def model_ids_by_hash(self) -> list[int]:
        """Every model id in graph-hash order: deterministic, unrelated to space or size."""
        return [r[0] for r in self._db.execute("SELECT id FROM models ORDER BY graph_hash")]

    def insert_models(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add model rows as an export holds them (every column of :data:`MODEL_COLUMNS`).

        Call inside :meth:`transaction`; a repeated id or graph hash fails the transaction.
        """
        self._db.executemany(
            f"INSERT INTO models ({', '.join(MODEL_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(MODEL_COLUMNS))})",
            [tuple(r[c] for c in MODEL_COLUMNS) for r in rows])

    # -- labels -------------------------------------------------------------------------

    def labels(self, target: str | None = None) -> list[Label]:
        """Every label (of ``target``, when given), ordered by model id and target."""
        where, args = (" WHERE target = ?", (target,)) if target else ("", ())
        cur = self._db.execute(
            "SELECT model_id, target, status, metrics, message, tool_version, settings_hash, "
            f"wall_s, measured_by, created FROM labels{where} ORDER BY model_id, target", args)
        return [Label(m, t, status, json.loads(metrics) if metrics else None, *rest)
                for m, t, status, metrics, *rest in cur]

    def labelled_targets(self, targets: Sequence[str]) -> dict[int, set[str]]:
        """Model id -> which of ``targets`` it has a label for (any status)."""
        have: dict[int, set[str]] = {}
        cur = self._db.execute(f"SELECT model_id, target FROM labels WHERE target IN "
                              f"({', '.join('?' * len(targets))})", list(targets))
        for model_id, target in cur:
            have.setdefault(model_id, set()).add(target)
        return have

    def label_counts(self) -> dict[str, dict[str, int]]:
        """Per target, how many models have each label status (ok, error, timeout)."""
        out: dict[str, dict[str, int]] = {}
        for target, status, n in self._db.execute(
                "SELECT target, status, COUNT(*) FROM labels GROUP BY target, status"):
            out.setdefault(target, {})[status] = n
        return out

    def ok_metrics(self) -> Iterator[tuple[str, dict[str, float]]]:
        """(target, metrics) of every ``ok`` label."""
        for target, metrics in self._db.execute(
                "SELECT target, metrics FROM labels WHERE status = 'ok' AND metrics IS NOT NULL"):
            yield target, json.loads(metrics)

    def labelled_models(self, target: str, *, space: str | None = None,
                        limit: int | None = None) -> list[LabelledModel]:
        """Models with an ``ok`` label for ``target`` (of ``space``), in id order."""
        sql = ("SELECT m.id, m.space, m.graph_hash, m.config, l.metrics FROM models m "
               "JOIN labels l ON l.model_id = m.id WHERE l.target = ? AND l.status = 'ok'")
        args: list[Any] = [target]
        if space is not None:
            sql, args = sql + " AND m.space = ?", [*args, space]
        sql += " ORDER BY m.id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        return [LabelledModel(i, sp, h, json.loads(config), json.loads(metrics))
                for i, sp, h, config, metrics in self._db.execute(sql, args)]

    def write_labels(self, labels: Sequence[Label], *, claimant: Claimant | None = None,
                     lease_s: float = 0.0) -> None:
        """Store labels (replacing older ones) and drop their claims, in one transaction.

        With ``claimant``, the leases of the claims it still holds are renewed to ``lease_s``
        from now: a run that keeps committing keeps its claims.
        """
        if not labels and claimant is None:
            return
        with self.transaction():
            self.insert_labels(labels, replace=True)
            self._db.executemany("DELETE FROM claims WHERE model_id = ? AND target = ?",
                                [(x.model_id, x.target) for x in labels])
            if claimant is not None:
                self._db.execute("UPDATE claims SET expires_at = ? WHERE claimed_by = ?",
                                (time.time() + lease_s, str(claimant)))

    def insert_labels(self, labels: Iterable[Label], *, replace: bool = False) -> None:
        """Add labels; call inside :meth:`transaction`. Without ``replace`` a repeat fails."""
        self._db.executemany(
            f"INSERT {'OR REPLACE ' if replace else ''}INTO labels (model_id, target, status, "
            "metrics, message, tool_version, settings_hash, wall_s, measured_by, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(x.model_id, x.target, x.status,
              None if x.metrics is None else json.dumps(x.metrics), x.message, x.tool_version,
              x.settings_hash, x.wall_s, x.measured_by, x.created) for x in labels])

    # -- claims -------------------------------------------------------------------------

    def claim(self, ids: Iterator[int], targets: Sequence[str], claimant: Claimant, *,
              count: int, settings_hashes: dict[str, str],
              lease_s: float) -> tuple[list[int], int]:
        """Claim for ``claimant`` the next ``count`` models of ``ids`` free on every target.

        One write transaction (BEGIN IMMEDIATE), so two processes never claim one pair:
        claims of dead processes and of ended leases are dropped first, then ``ids`` is read
        until ``count`` models are claimed. A model is free when none of ``targets`` has a
        label or a claim for it; the others are passed over (and consumed from ``ids``).

        Returns:
            The claimed model ids, and how many models were passed over.
        """
        now = time.time()
        claimed: list[int] = []
        passed = 0
        marks = ", ".join("?" * len(targets))
        taken = (f"SELECT 1 FROM labels WHERE model_id = ? AND target IN ({marks}) UNION ALL "
                 f"SELECT 1 FROM claims WHERE model_id = ? AND target IN ({marks}) LIMIT 1")
        with self.transaction():
            self._drop_dead_claims(now)
            for model_id in ids:
                if self._db.execute(taken, [model_id, *targets, model_id, *targets]).fetchone():
                    passed += 1
                    continue
                self._db.executemany(
                    "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                    [(model_id, t, settings_hashes[t], str(claimant), now, now + lease_s)
                     for t in targets])
                claimed.append(model_id)
                if len(claimed) >= count:
                    break
        return claimed, passed

    def _drop_dead_claims(self, now: float) -> None:
        """Delete the claims whose lease ended or whose process is gone (inside a transaction)."""
        self._db.execute("DELETE FROM claims WHERE expires_at < ?", (now,))
        owners = [r[0] for r in self._db.execute("SELECT DISTINCT claimed_by FROM claims")]
        dead = [(o,) for o in owners if Claimant.parse(o).alive() is False]
        self._db.executemany("DELETE FROM claims WHERE claimed_by = ?", dead)

    def live_claims(self, targets: Sequence[str]) -> set[tuple[int, str]]:
        """(model id, target) pairs of ``targets`` that a live process has claimed."""
        now = time.time()
        alive: dict[str, bool] = {}
        out = set()
        cur = self._db.execute(f"SELECT model_id, target, claimed_by FROM claims WHERE target IN "
                              f"({', '.join('?' * len(targets))}) AND expires_at >= ?",
                              [*targets, now])
        for model_id, target, owner in cur:
            if owner not in alive:
                alive[owner] = Claimant.parse(owner).alive() is not False
            if alive[owner]:
                out.add((model_id, target))
        return out

    def claims(self) -> list[Claim]:
        """Every claim, live or not, ordered by model id and target."""
        return [Claim(*r) for r in self._db.execute(
            "SELECT model_id, target, settings_hash, claimed_by, claimed_at, expires_at "
            "FROM claims ORDER BY model_id, target")]

    def release_claims(self, claimant: Claimant) -> None:
        """Drop every claim ``claimant`` holds (a run that ends leaves none behind)."""
        with self.transaction():
            self._db.execute("DELETE FROM claims WHERE claimed_by = ?", (str(claimant),))


def _version(db: sqlite3.Connection) -> int:
    """The schema version a store is stamped with; 0 for a new, empty one."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *rest) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


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
