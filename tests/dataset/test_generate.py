"""`dataset generate`: resumable, kill -9 safe, duplicates skipped, bounded on disk."""

from __future__ import annotations

import hashlib
import sqlite3

import pyarrow.parquet as pq
import pytest

from helpers.processes import kill_when, perfsage
from perfsage.dataset.generate import generate
from perfsage.dataset.store import DB_NAME, DatasetError, Store


def _rows(folder) -> list[tuple]:
    with Store(folder) as store:
        return sorted((r["space"], r["seed"], r["idx"], r["graph_hash"], r["model_sha256"])
                      for r in store.models())


def _sql(folder, statement: str, *args) -> list[tuple]:
    """Run SQL on the store's file directly: a look at (or a change to) what the API hides."""
    with sqlite3.connect(folder / DB_NAME) as db:
        return db.execute(statement, args).fetchall()


def _handled(folder) -> list[int]:
    with Store(folder) as store:
        return sorted(store.done_indices("keyword-spotting", 0))


def test_generate_then_extend_equals_one_run(tmp_path):
    generate(tmp_path / "a", "keyword-spotting", 12, seed=0)
    summary = generate(tmp_path / "a", "keyword-spotting", 30, seed=0)
    assert (summary.stored_before, summary.added) == (12, 18)
    generate(tmp_path / "b", "keyword-spotting", 30, seed=0, workers=2)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    again = generate(tmp_path / "a", "keyword-spotting", 30, seed=0)
    assert again.added == 0


def test_duplicate_graphs_are_skipped_and_counted(tmp_path):
    # Many NAS-Bench-201 cells differ only in branches that never reach the cell output.
    summary = generate(tmp_path, "nasbench201", 60, seed=0)
    assert summary.stored == 60
    assert summary.duplicates > 0
    with Store(tmp_path) as store:
        hashes = [r["graph_hash"] for r in store.models()]
    dups = _sql(tmp_path, "SELECT graph_hash FROM duplicates")
    assert len(set(hashes)) == 60
    assert {h for (h,) in dups} <= set(hashes)
    assert len(dups) == summary.duplicates


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    folder = tmp_path / "killed"
    kill_when(["dataset", "generate", "--space", "keyword-spotting", "--count", "5000",
               "--out", str(folder), "--workers", "2"],
              folder / DB_NAME, "SELECT COUNT(*) FROM models", 60)
    before = len(_rows(folder))
    assert 60 <= before < 5000
    summary = generate(folder, "keyword-spotting", before + 40, seed=0)
    assert summary.stored_before == before
    handled = _handled(folder)
    assert handled == list(range(len(handled)))  # no gap, no index twice
    # The same models as a run that was never interrupted.
    generate(tmp_path / "clean", "keyword-spotting", before + 40, seed=0)
    assert _rows(folder) == _rows(tmp_path / "clean")


def test_keep_files_are_content_addressed_and_rebuild_matches(tmp_path):
    generate(tmp_path, "keyword-spotting", 5, seed=3, keep_files=True)
    with Store(tmp_path) as store:
        for row in store.models():
            data = (tmp_path / row["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["model_sha256"]
            assert row["file"].endswith(f"{row['model_sha256']}.tflite")
            _sql(tmp_path, "UPDATE models SET file = NULL WHERE id = ?", row["id"])
            assert store.model_bytes(row["id"]) == data  # rebuilt from the config alone
    assert not list(tmp_path.rglob("*.tmp*"))


def test_rows_stay_small_enough_for_the_full_dataset(tmp_path):
    # 134,912 models with labels must fit in 2 GB: about 15 KB a model. Image
    # classification has the largest configs.
    generate(tmp_path, "image-classification", 40, seed=0)
    size = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert size / 40 < 4096


def test_export_parquet(tmp_path):
    generate(tmp_path, "keyword-spotting", 8, seed=0)
    with Store(tmp_path) as store:
        from perfsage.dataset.export import export_parquet

        assert export_parquet(store, tmp_path / "d.parquet") == 8
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.num_rows == 8
    assert {"space", "config", "macs", "params", "ops", "graph_hash"} <= set(table.column_names)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not a PerfSAGE dataset"):
        Store(tmp_path)


def test_cli_generate_info_export(tmp_path):
    gen = perfsage("dataset", "generate", "--space", "nasbench201", "--count", "6", "--out",
                   str(tmp_path))
    assert gen.returncode == 0, gen.stderr
    assert "6 models stored" in gen.stdout
    info = perfsage("dataset", "info", str(tmp_path))
    assert info.returncode == 0 and "nasbench201" in info.stdout and "MACs" in info.stdout
    out = perfsage("dataset", "export", str(tmp_path), "--parquet", str(tmp_path / "x.parquet"))
    assert out.returncode == 0 and (tmp_path / "x.parquet").exists()
    bad = perfsage("dataset", "generate", "--space", "nope", "--count", "1", "--out",
                   str(tmp_path))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("perfsage: error: unknown search space")


def test_a_space_that_always_fails_stops_the_run(tmp_path, monkeypatch):
    from perfsage.dataset import generate as gen
    from perfsage.errors import PerfSageError
    from perfsage.spaces import get_space

    space = get_space("keyword-spotting")

    def broken(config, dtype="int8"):
        raise ValueError("builder broke")

    monkeypatch.setattr(space, "build", broken)
    monkeypatch.setattr(gen, "MAX_CONSECUTIVE_FAILURES", 25)
    with pytest.raises(PerfSageError, match="the last 25 models all failed.*builder broke"):
        generate(tmp_path, "keyword-spotting", 10, seed=0)
    with Store(tmp_path) as store:
        assert store.counts_by_space()["keyword-spotting"]["failures"] == 25


def test_export_then_import_round_trips_models_and_labels(tmp_path):
    from perfsage.dataset.annotate import annotate
    from perfsage.dataset.export import export_parquet, import_parquet

    generate(tmp_path / "a", "keyword-spotting", 6, seed=1)
    annotate(tmp_path / "a", ["cortex-m-tflm"], workers=1)
    with Store(tmp_path / "a") as store:
        export_parquet(store, tmp_path / "a.parquet")
        before = store.labels()
        models_before = store.models()
    assert import_parquet(tmp_path / "a.parquet", tmp_path / "b").models == 6
    with Store(tmp_path / "b") as store:
        after = store.labels()
        assert store.models() == models_before
        assert store.model_bytes(3)  # rebuilds from the imported config
    def kept(labels):  # what an export holds of a label
        return [(x.model_id, x.target, x.status, x.metrics, x.settings_hash, x.tool_version)
                for x in labels]

    assert kept(after) == kept(before)
    with pytest.raises(DatasetError, match="already holds a dataset"):
        import_parquet(tmp_path / "a.parquet", tmp_path / "b")


def test_exports_of_disjoint_spaces_import_into_one_dataset(tmp_path):
    from perfsage.dataset.export import export_parquet, import_parquet

    generate(tmp_path / "a", "keyword-spotting", 3, seed=0)
    generate(tmp_path / "a", "random-graphs", 4, seed=0)
    with Store(tmp_path / "a") as store:
        assert export_parquet(store, tmp_path / "kws.parquet", ["keyword-spotting"]) == 3
        assert export_parquet(store, tmp_path / "rg.parquet", ["random-graphs"]) == 4
        models_before = store.models()
    done = import_parquet([tmp_path / "kws.parquet", tmp_path / "rg.parquet"], tmp_path / "b")
    assert (done.models, done.duplicates) == (7, 0)
    with Store(tmp_path / "b") as store:
        assert store.models() == models_before


def test_a_graph_in_two_exports_is_imported_once(tmp_path):
    """A coverage space sampled under a second seed draws some of the first seed's models."""
    from perfsage.dataset.export import export_parquet, import_parquet

    generate(tmp_path / "a", "keyword-spotting", 3, seed=0)
    generate(tmp_path / "b", "keyword-spotting", 5, seed=0)  # the same 3, and 2 more
    for name in "ab":
        with Store(tmp_path / name) as store:
            export_parquet(store, tmp_path / f"{name}.parquet")
    done = import_parquet([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "c")
    assert (done.models, done.duplicates) == (5, 3)
    with Store(tmp_path / "c") as store:
        assert len({m["graph_hash"] for m in store.models()}) == len(store.models()) == 5


def test_cli_export_one_space_and_import_two_files(tmp_path):
    generate(tmp_path / "a", "keyword-spotting", 2, seed=0)
    generate(tmp_path / "a", "random-graphs", 2, seed=0)
    for space in ("keyword-spotting", "random-graphs"):
        out = perfsage("dataset", "export", str(tmp_path / "a"), "--space", space, "--parquet",
                       str(tmp_path / f"{space}.parquet"))
        assert out.returncode == 0 and "2 models written" in out.stdout, out.stderr
    back = perfsage("dataset", "import", str(tmp_path / "keyword-spotting.parquet"),
                    str(tmp_path / "random-graphs.parquet"), "--out", str(tmp_path / "b"))
    assert back.returncode == 0 and "4 models imported" in back.stdout, back.stderr
    bad = perfsage("dataset", "export", str(tmp_path / "a"), "--space", "nope", "--parquet",
                   str(tmp_path / "x.parquet"))
    assert bad.returncode == 2 and "unknown search space" in bad.stderr


def test_exports_of_two_datasets_are_renumbered_into_one(tmp_path):
    from perfsage.dataset.export import export_parquet, import_parquet

    generate(tmp_path / "a", "keyword-spotting", 3, seed=0)
    generate(tmp_path / "z", "nasbench201", 2, seed=0)  # its ids start at 1 too
    for name in ("a", "z"):
        with Store(tmp_path / name) as store:
            export_parquet(store, tmp_path / f"{name}.parquet", None)
    done = import_parquet([tmp_path / "a.parquet", tmp_path / "z.parquet"], tmp_path / "b")
    assert done.models == 5
    with Store(tmp_path / "b") as store:
        assert store.counts_by_space() == {"keyword-spotting": {"models": 3, "duplicates": 0,
                                                               "failures": 0},
                                           "nasbench201": {"models": 2, "duplicates": 0,
                                                           "failures": 0}}
