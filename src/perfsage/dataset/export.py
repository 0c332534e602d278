"""Parquet in and out: one row per model, labels as ``<target>/<metric>`` columns.

The export is what pandas users read, and what the repository keeps of the datasets behind
the shipped weights: configs rebuild the models (the builder is deterministic) and the
label columns hold every figure, so anyone can retrain without re-running the tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from perfsage.dataset.store import MODEL_COLUMNS, DatasetError, Label, Store

#: Per-target columns that describe the label rather than hold a metric.
LABEL_FIELDS = ("status", "settings_hash", "tool_version")


def export_parquet(store: Store, path: str | Path, spaces: list[str] | None = None) -> int:
    """Write every model (of ``spaces``, when given) and its labels to ``path``.

    Returns the number of rows. Exports of disjoint spaces import back into one dataset.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = store.model_table(spaces)
    ids = columns["id"]
    position = {model_id: i for i, model_id in enumerate(ids)}
    for label in store.labels():
        if label.model_id not in position:
            continue  # a model of a space left out
        values = {"status": label.status, "settings_hash": label.settings_hash,
                  "tool_version": label.tool_version, **(label.metrics or {})}
        for metric, value in values.items():
            column = columns.setdefault(f"{label.target}/{metric}", [None] * len(ids))
            column[position[label.model_id]] = value
    pq.write_table(pa.table(columns), str(path), compression="zstd")
    return len(ids)


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


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What ``import_parquet`` stored: models, and later copies of a graph it skipped."""

    models: int
    duplicates: int


def import_parquet(paths: str | Path | list, folder: str | Path) -> ImportSummary:
    """Create a dataset at ``folder`` from one or more exports.

    Several exports (say, the task spaces, the random graphs and the zoo's shards) become one
    dataset, as if generated into one folder. A graph in more than one export (a coverage
    space sampled again under another seed draws a few of the same models) is kept once,
    from the first export that holds it, and counted. Exports of one dataset keep their
    model ids; an export whose ids another already uses (it came from another dataset) is
    renumbered after them, its labels with it.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    batches, used, seen, duplicates = [], set(), set(), 0
    for path in paths:
        table = _read(path)
        rows = []
        for r in table.to_pylist():
            if r["graph_hash"] in seen:
                duplicates += 1
            else:
                seen.add(r["graph_hash"])
                rows.append(r)
        ids = [r["id"] for r in rows]
        if used & set(ids):  # another dataset's numbering: continue after ours
            shift = max(used) + 1 - min(ids)
            for r in rows:
                r["id"] += shift
        used.update(r["id"] for r in rows)
        batches.append((table.column_names, rows))
    with Store(folder, create=True) as store:
        if store.count():
            raise DatasetError(f"{folder}: already holds a dataset; import into a new folder")
        with store.transaction():
            for names, rows in batches:
                store.insert_models(rows)
                store.insert_labels(_labels(names, rows))
    return ImportSummary(len(seen), duplicates)


def _labels(names: list[str], rows: list[dict]) -> list[Label]:
    """The labels held by the ``<target>/<field>`` columns of an export's rows."""
    labels = []
    for target in sorted({c.split("/")[0] for c in names if "/" in c}):
        prefix = f"{target}/"
        metrics = [c[len(prefix):] for c in names
                   if c.startswith(prefix) and c[len(prefix):] not in LABEL_FIELDS]
        labels += [Label(r["id"], target, r[prefix + "status"],
                         {m: r[prefix + m] for m in metrics}
                         if r[prefix + "status"] == "ok" else None,
                         tool_version=r.get(prefix + "tool_version"),
                         settings_hash=r.get(prefix + "settings_hash"), created=r["created"])
                   for r in rows if r.get(prefix + "status") is not None]
    return labels
