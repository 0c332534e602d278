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


def export_parquet(store: Store, path: str | Path) -> int:
    """Write every model and its labels to ``path``; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cur = store.db.execute("SELECT * FROM models ORDER BY id")
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
        values = {"status": status, "settings_hash": settings, "tool_version": version,
                  **(json.loads(metrics) if metrics else {})}
        for metric, value in values.items():
            column = columns.setdefault(f"{target}/{metric}", [None] * len(ids))
            column[position[model_id]] = value
    pq.write_table(pa.table(columns), str(path), compression="zstd")
    return len(ids)


def import_parquet(path: str | Path, folder: str | Path) -> int:
    """Create a dataset at ``folder`` from an export; returns the number of models."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read Parquet ({exc})") from None
    rows = table.to_pylist()
    model_columns = ("id", "space", "seed", "idx", "config", "graph_hash", "model_sha256",
                     "file", "bytes", "macs", "params", "ops", "created")
    missing = [c for c in model_columns if c not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: not a PerfSAGE dataset export (no {', '.join(missing)})")
    targets = sorted({c.split("/")[0] for c in table.column_names if "/" in c})
    with Store(folder, create=True) as store:
        if store.count():
            raise DatasetError(f"{folder}: already holds a dataset; import into a new folder")
        with store.transaction():
            store.db.executemany(
                f"INSERT INTO models ({', '.join(model_columns)}) VALUES "
                f"({', '.join('?' * len(model_columns))})",
                [tuple(r[c] for c in model_columns) for r in rows])
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
    return len(rows)
