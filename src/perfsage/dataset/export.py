"""Export a dataset to Parquet for pandas users: one row per model, labels as columns."""

from __future__ import annotations

import json
from pathlib import Path

from perfsage.dataset.store import Store


def export_parquet(store: Store, path: str | Path) -> int:
    """Write every model (and its labels, ``<target>/<metric>`` columns) to ``path``.

    Returns the number of rows written. The config stays a JSON string column.
    """
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
    for model_id, target, status, metrics in store.db.execute(
            "SELECT model_id, target, status, metrics FROM labels"):
        values = {"status": status, **(json.loads(metrics) if metrics else {})}
        for metric, value in values.items():
            column = columns.setdefault(f"{target}/{metric}", [None] * len(ids))
            column[position[model_id]] = value
    table = pa.table(columns)
    pq.write_table(table, str(path), compression="zstd")
    return len(ids)
