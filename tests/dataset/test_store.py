"""The store: the only module that speaks SQL, upgraded in place, read by predictors only."""

from __future__ import annotations

import ast
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from perfsage.dataset.export import export_parquet, import_parquet
from perfsage.dataset.generate import generate
from perfsage.dataset.store import DB_NAME, SCHEMA_VERSION, DatasetError, Label, Store

SRC = Path(__file__).resolve().parents[2] / "src" / "perfsage"
DATA = Path(__file__).resolve().parents[2] / "data" / "random-graphs-6k.parquet"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_store_speaks_sql():
    speakers = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                if "sqlite3" in _imports(p)}
    assert speakers == {"dataset/store.py"}


def test_dataset_does_not_import_predictors():
    for path in (SRC / "dataset").glob("*.py"):
        assert not any(m.startswith("perfsage.predictors") for m in _imports(path)), path
    modules = [f"perfsage.dataset.{p.stem}" for p in (SRC / "dataset").glob("*.py")]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('perfsage.predictors')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_predictors_read_datasets_through_the_store():
    code = ("import sys, perfsage.predictors.graphset, perfsage.predictors.latbench\n"
            "print('perfsage.dataset.store' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "True"


def _downgrade_to_v1(folder: Path) -> None:
    """Make ``folder`` a store as schema version 1 left it: no claims, labels without a claimant."""
    with sqlite3.connect(folder / DB_NAME) as db:
        db.execute("DROP TABLE claims")
        db.execute("ALTER TABLE labels DROP COLUMN measured_by")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")


def test_a_version_1_store_is_upgraded_and_keeps_its_data(tmp_path):
    generate(tmp_path, "keyword-spotting", 4, seed=0)
    with Store(tmp_path) as store:
        with store.transaction():
            store.insert_labels([Label(1, "cortex-m-tflm", "ok", {"arena_kib": 3.5})])
        models = store.models()
    _downgrade_to_v1(tmp_path)
    with Store(tmp_path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "2"
        assert store.models() == models
        [label] = store.labels()
        assert (label.metrics, label.measured_by) == ({"arena_kib": 3.5}, None)
        assert store.claims() == []
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DatasetError, match="version 99 is newer.*upgrade PerfSAGE"):
        Store(tmp_path)


@pytest.mark.skipif(not DATA.exists(), reason="data/ exports not present")
def test_a_shipped_export_imports_and_exports_back_unchanged(tmp_path):
    part = pq.read_table(DATA).slice(0, 300)  # every column, a few rows: fast
    pq.write_table(part, tmp_path / "in.parquet")
    assert import_parquet(tmp_path / "in.parquet", tmp_path / "d").models == 300
    with Store(tmp_path / "d") as store:
        export_parquet(store, tmp_path / "out.parquet")
    back = pq.read_table(tmp_path / "out.parquet")
    assert sorted(back.column_names) == sorted(part.column_names)
    assert back.select(part.column_names).equals(part)
