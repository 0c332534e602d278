"""`dataset annotate`: labels in the store, resumable after SIGKILL, errors and timeouts kept."""

from __future__ import annotations

import sqlite3

import pytest

from helpers.processes import kill_when
from perfsage.dataset.annotate import annotate, missing_labels
from perfsage.dataset.claims import Claimant
from perfsage.dataset.generate import generate
from perfsage.dataset.store import DB_NAME, Store


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("annotate")
    generate(folder, "keyword-spotting", 12, seed=0)
    return folder


def _labels(folder) -> dict[tuple[int, str], tuple]:
    with Store(folder) as store:
        return {(x.model_id, x.target): (x.status, x.metrics, x.settings_hash, x.tool_version)
                for x in store.labels()}


def test_annotate_stores_one_label_per_model_and_target(tmp_path, dataset):
    import shutil

    folder = tmp_path / "d"
    shutil.copytree(dataset, folder)
    summary = annotate(folder, ["ethos-u55-128", "cortex-m-tflm"], workers=2)
    assert summary.by_status == {"ethos-u55-128": {"ok": 12}, "cortex-m-tflm": {"ok": 12}}
    labels = _labels(folder)
    assert len(labels) == 24
    from perfsage.targets import get_target

    vela = get_target("ethos-u55-128")
    with Store(folder) as store:
        for model_id in (1, 7):
            status, metrics, settings, version = labels[model_id, "ethos-u55-128"]
            assert status == "ok" and settings == vela.settings_hash and version == "5.2.0"
            # The stored label is what measuring the model directly gives.
            assert metrics == pytest.approx(vela.measure(store.model_bytes(model_id)))
        assert missing_labels(store, ["ethos-u55-128", "cortex-m-tflm"]) == {}
    again = annotate(folder, ["ethos-u55-128", "cortex-m-tflm"], workers=1)
    assert again.total == 0
    # A new target later measures only that target.
    later = annotate(folder, ["ethos-u65-256", "cortex-m-tflm"], workers=1, limit=3)
    assert later.by_status == {"ethos-u65-256": {"ok": 3}}


def test_error_is_recorded_and_the_run_goes_on(tmp_path, dataset):
    import hashlib
    import shutil

    folder = tmp_path / "d"
    shutil.copytree(dataset, folder)
    broken = b"TFL3" * 8  # Vela cannot read this; the worker dies on it and is replaced
    (folder / "models").mkdir()
    (folder / "models" / "broken.tflite").write_bytes(broken)
    with sqlite3.connect(folder / DB_NAME) as db:
        db.execute("UPDATE models SET file = 'models/broken.tflite', model_sha256 = ? "
                   "WHERE id = 2", (hashlib.sha256(broken).hexdigest(),))
    summary = annotate(folder, ["ethos-u55-128"], workers=1)
    labels = _labels(folder)
    assert summary.by_status == {"ethos-u55-128": {"ok": 11, "error": 1}}
    assert labels[2, "ethos-u55-128"][0] == "error"
    with Store(folder) as store:
        assert store.labels("ethos-u55-128")[1].message  # model 2's


def test_timeout_is_recorded(tmp_path, dataset):
    import shutil

    folder = tmp_path / "d"
    shutil.copytree(dataset, folder)
    summary = annotate(folder, ["ethos-u55-128"], workers=1, timeout_s=1e-3, limit=2)
    assert summary.by_status == {"ethos-u55-128": {"timeout": 2}}
    assert {v[0] for v in _labels(folder).values()} == {"timeout"}


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    folder = tmp_path / "k"
    generate(folder, "nasbench201", 40, seed=1)
    kill_when(["dataset", "annotate", str(folder), "--target", "ethos-u55-128", "--target",
               "cortex-m-tflm", "--workers", "2"],
              folder / DB_NAME, "SELECT COUNT(*) FROM labels", 10)
    done = len(_labels(folder))
    assert 10 <= done < 80
    with Store(folder) as store:
        held = store.claims()
    assert held  # the killed run held models it was measuring...
    summary = annotate(folder, ["ethos-u55-128", "cortex-m-tflm"], workers=2)
    assert summary.total == 80 - done  # ...taken over: exactly the missing ones, nothing twice
    labels = _labels(folder)
    assert len(labels) == 80 and all(v[0] == "ok" for v in labels.values())
    with Store(folder) as store:
        assert store.claims() == []
        resumed = {(x.model_id, x.target) for x in store.labels()
                   if x.measured_by == str(Claimant.this_process())}
    assert {(c.model_id, c.target) for c in held} <= resumed
