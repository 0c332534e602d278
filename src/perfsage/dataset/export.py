"""Parquet in and out: one row per model, labels as ``<target>/<metric>`` columns.

The export is what pandas users read, and what the repository keeps of the datasets behind
the shipped weights: configs rebuild the models (the builder is deterministic) and the
label columns hold every figure, so anyone can retrain without re-running the tools.
"""

from __future__ import annotations

import json
from pathlib import Path

from perfsage.dataset.store import DatasetError, Store

#: Per-target columns that describe the label rather than hold a metric.
LABEL_FIELDS = ("status", "settings_hash", "tool_version")


def export_parquet(store: Store, path: str | Path, spaces: list[str] | None = None) -> int:
    """Write every model (of ``spaces``, when given) and its labels to ``path``.

    Returns the number of rows. Exports of disjoint spaces import back into one dataset.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f" WHERE space IN ({', '.join('?' * len(spaces))})" if spaces else ""
    cur = store.db.execute(f"SELECT * FROM models{where} ORDER BY id", spaces or [])
    names = [d[0] for d in cur.description]
    columns: dict[str, list] = {n: [] for n in names}
    ids = []
    for row in cur:
        for n, v in zip(names, row, strict=True):
            columns[n].append(v)
        ids.append(row[0])
    position = {model_id: i for i, model_id in enumerate(ids)}
    for model_id, target, status, metrics, settings, version in store.db.execute(
            "SELECT model_id, target, status, metrics, settings_hash, tool_version FROM labels"):
        if model_id not in position:
            continue  # a model of a space left out
        values = {"status": status, "settings_hash": settings, "tool_version": version,
                  **(json.loads(metrics) if metrics else {})}
        for metric, value in values.items():
            column = columns.setdefault(f"{target}/{metric}", [None] * len(ids))
            column[position[model_id]] = value
    pq.write_table(pa.table(columns), str(path), compression="zstd")
    return len(ids)


MODEL_COLUMNS = ("id", "space", "seed", "idx", "config", "graph_hash", "model_sha256", "file",
                 "bytes", "macs", "params", "ops", "created")


def _read(path: str | Path):
    """One export's table, checked for the model columns."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read Parquet ({exc})") from None
    missing = [c for c in MODEL_COLUMNS if c not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: not a PerfSAGE dataset export (no {', '.join(missing)})")
    return table


def import_parquet(paths: str | Path | list, folder: str | Path) -> int:
    """Create a dataset at ``folder`` from one or more exports; returns the number of models.

    Several exports (say, the task spaces and the random graphs) must not share a model id
    or a graph: they become one dataset, as if generated into one folder.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    tables = [_read(p) for p in paths]
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    hashes = [h for t in tables for h in t.column("graph_hash").to_pylist()]
    if len(set(ids)) != len(ids) or len(set(hashes)) != len(hashes):
        raise DatasetError(f"{', '.join(map(str, paths))}: the exports share models; import "
                           "exports of disjoint spaces, or one at a time into new folders")
    with Store(folder, create=True) as store:
        if store.count():
            raise DatasetError(f"{folder}: already holds a dataset; import into a new folder")
        with store.transaction():
            for table in tables:
                _insert(store, table)
    return len(ids)


def _insert(store: Store, table) -> None:
    """The models and labels of one export, inside the caller's transaction."""
    rows = table.to_pylist()
    targets = sorted({c.split("/")[0] for c in table.column_names if "/" in c})
    store.db.executemany(
        f"INSERT INTO models ({', '.join(MODEL_COLUMNS)}) VALUES "
        f"({', '.join('?' * len(MODEL_COLUMNS))})",
        [tuple(r[c] for c in MODEL_COLUMNS) for r in rows])
    for target in targets:
        prefix = f"{target}/"
        metrics = [c[len(prefix):] for c in table.column_names
                   if c.startswith(prefix) and c[len(prefix):] not in LABEL_FIELDS]
        store.db.executemany(
            "INSERT INTO labels (model_id, target, status, metrics, settings_hash, "
            "tool_version, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r["id"], target, r[prefix + "status"],
              json.dumps({m: r[prefix + m] for m in metrics})
              if r[prefix + "status"] == "ok" else None,
              r.get(prefix + "settings_hash"), r.get(prefix + "tool_version"),
              r["created"])
             for r in rows if r.get(prefix + "status") is not None])
