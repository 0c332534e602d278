"""Per-layer Vela figures as extra supervision for the block predictor (issue #6, stretch).

Vela's ``--verbose-performance`` writes ``<model>_per-layer.csv``: one row per lowered
operator, in execution order, with ``Op Cycles`` (they add up to the summary's total
cycles, so to ``latency_ms`` times the clock) and ``NPU`` (adding up to ``npu_cycles``),
named after the original operator's output tensor. Rows map back to IR operators by that
name; rows Vela invents while lowering one operator (a softmax becomes a dozen) carry
other names and are charged to the next named row, which ends the lowering.

The figures are kept apart from the dataset (which stays as it is) in one ``.npz`` per
target: model ids, and per-operator cycles concatenated in operator order.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perfsage.targets.capture import capture_output


def per_operator(model_bytes: bytes, target: str) -> np.ndarray:
    """float64 [operators, 2]: (op cycles, NPU cycles) of each operator of the main graph."""
    from ethosu.vela import vela

    from perfsage.errors import MeasurementError
    from perfsage.graph import read_model
    from perfsage.targets.registry import target_class

    options = target_class(target).options
    sub = read_model(model_bytes).main
    by_name = {}
    for op in sub.operators:
        for t in op.outputs:
            if t >= 0:
                by_name.setdefault(sub.tensors[t].name, op.index)
    with tempfile.TemporaryDirectory(prefix="perfsage-layers-") as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(model_bytes)
        with capture_output():
            status = vela.main(options.args(folder / "model.tflite", folder / "out")
                               + ["--verbose-performance"])
        table = folder / "out" / "model_per-layer.csv"
        if status or not table.is_file():
            raise MeasurementError(target, "Vela wrote no per-layer table")
        rows = list(csv.DictReader(io.StringIO(table.read_text())))
    cycles = np.zeros((len(sub.operators), 2))
    pending = np.zeros(2)
    for row in rows:
        pending += (float(row["Op Cycles"] or 0), float(row["NPU"] or 0))
        op = by_name.get(row["Name"].strip())
        if op is not None:
            cycles[op] += pending
            pending[:] = 0
    if len(sub.operators):
        cycles[-1] += pending
    return cycles


def collect(dataset: str | Path, target: str, model_ids: list[int], out: str | Path, *,
            progress: Callable[[int, int], None] | None = None) -> Path:
    """Run Vela on ``model_ids`` of ``dataset`` and write their per-operator cycles to ``out``.

    Models already in ``out`` are kept, so an interrupted run resumes.
    """
    from perfsage.dataset.store import Store

    out = Path(out)
    have = load(out) if out.exists() else {}
    todo = [i for i in model_ids if i not in have]
    with Store(dataset) as store:
        for n, model_id in enumerate(todo):
            have[model_id] = per_operator(store.model_bytes(model_id), target)
            if (n + 1) % 50 == 0 or n + 1 == len(todo):
                _save(out, have)
                if progress:
                    progress(n + 1, len(todo))
    return out


def _save(path: Path, table: dict[int, np.ndarray]) -> None:
    ids = np.array(sorted(table), dtype=np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=ids, counts=np.array([len(table[i]) for i in ids.tolist()]),
             cycles=np.concatenate([table[i] for i in ids.tolist()]) if len(ids)
             else np.zeros((0, 2)))
    tmp.replace(path)


def load(path: str | Path) -> dict[int, np.ndarray]:
    """Model id -> per-operator (op cycles, NPU cycles), as ``collect`` wrote them."""
    with np.load(path, allow_pickle=False) as z:
        ids, counts, cycles = z["ids"], z["counts"], z["cycles"]
    at = np.concatenate([[0], np.cumsum(counts)])
    return {int(i): cycles[at[k]:at[k + 1]] for k, i in enumerate(ids.tolist())}


def block_targets(path: str | Path, model_ids: np.ndarray, labels: dict[str, np.ndarray],
                  splits: list, metrics: list[str]) -> np.ndarray:
    """Per-block targets [blocks of every graph, metrics]; NaN where there is no figure.

    ``latency_ms`` gets a block's op cycles scaled by the model's own total (so clock and
    units match the label exactly), ``npu_cycles`` its NPU cycles; other metrics, and
    models without per-layer figures, stay NaN.
    """
    table = load(path)
    rows = []
    for k, (model_id, s) in enumerate(zip(model_ids.tolist(), splits, strict=True)):
        y = np.full((len(s.blocks), len(metrics)), np.nan)
        cycles = table.get(int(model_id))
        if cycles is not None and len(cycles) == len(s.block_of):
            per_block = np.zeros((len(s.blocks), 2))
            np.add.at(per_block, s.block_of, cycles)
            if "latency_ms" in metrics and per_block[:, 0].sum() > 0:
                scale = labels["latency_ms"][k] / per_block[:, 0].sum()
                y[:, metrics.index("latency_ms")] = per_block[:, 0] * scale
            if "npu_cycles" in metrics:
                y[:, metrics.index("npu_cycles")] = per_block[:, 1]
        rows.append(y)
    out = np.concatenate(rows) if rows else np.zeros((0, len(metrics)))
    out[out <= 0] = np.nan  # free blocks (a reshape) have no relative error to learn
    return out.astype(np.float32)
