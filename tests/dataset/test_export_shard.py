"""scripts/export_shard.py: disjoint shards of finished rows that import back together."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow.parquet as pq

from perfsage.dataset.annotate import annotate
from perfsage.dataset.export import import_parquet
from perfsage.dataset.generate import generate
from perfsage.dataset.store import Store

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "export_shard.py"


def _script():
    spec = importlib.util.spec_from_file_location("export_shard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shards_hold_each_finished_row_once_and_import_together(tmp_path):
    shard = _script().new_shard
    folder, prefix = tmp_path / "ds", tmp_path / "shards" / "kws"
    generate(folder, "keyword-spotting", 5, seed=0)
    targets = ["cortex-m-tflm"]
    assert shard(folder, prefix, ["keyword-spotting"], targets) is None  # nothing labelled
    annotate(folder, targets, workers=1, limit=2)
    first = shard(folder, prefix, ["keyword-spotting"], targets)
    assert first.name == "kws-00.parquet" and pq.read_metadata(first).num_rows == 2
    assert shard(folder, prefix, ["keyword-spotting"], targets) is None  # no new rows
    annotate(folder, targets, workers=1)
    second = shard(folder, prefix, ["keyword-spotting"], targets)
    assert second.name == "kws-01.parquet" and pq.read_metadata(second).num_rows == 3
    # A row waits until it has every target asked for.
    assert shard(folder, prefix, ["keyword-spotting"], [*targets, "ethos-u55-128"]) is None
    assert import_parquet([first, second], tmp_path / "back").models == 5
    with Store(tmp_path / "back") as back, Store(folder) as original:
        assert back.models() == original.models()
        assert len(list(back.labels())) == 5
