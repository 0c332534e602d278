"""predict_many with worker processes: the same predictions, the same errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import perfsage
from perfsage.errors import ModelFileError, UsageError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def test_workers_predict_what_one_process_predicts(trained):
    paths = EXAMPLES * 40  # enough to be split into chunks for the workers
    alone = perfsage.predict_many(paths, weights=str(trained))
    _same(perfsage.predict_many(paths, weights=str(trained), workers=2), alone)
    _same(perfsage.predict_many(paths[:3], weights=str(trained), workers=2), alone[:3])


def _same(rows: list[dict], expected: list[dict]) -> None:
    """Equal to float32 precision: BLAS may round the last bit differently for another
    batch shape, and workers run the network on smaller batches."""
    assert len(rows) == len(expected)
    for a, b in zip(rows, expected, strict=True):
        assert a == pytest.approx(b, rel=1e-5)


def test_a_broken_model_fails_the_same_way_in_a_worker(trained, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model at all")
    paths = [*EXAMPLES * 40, broken]
    with pytest.raises(ModelFileError) as alone:
        perfsage.predict_many(paths, weights=str(trained))
    with pytest.raises(ModelFileError) as pooled:
        perfsage.predict_many(paths, weights=str(trained), workers=2)
    assert str(pooled.value) == str(alone.value)
    assert str(pooled.value).startswith(f"{broken}: ")


def test_workers_stay_for_the_next_call_until_closed(trained, tmp_path):
    from perfsage import api

    paths = EXAMPLES * 40
    first = perfsage.predict_many(paths, weights=str(trained), workers=2)
    pool = next(iter(api._POOL.values()))
    pids = {p.pid for p in pool._pool}
    _same(perfsage.predict_many(paths, weights=str(trained), workers=2), first)
    assert {p.pid for p in next(iter(api._POOL.values()))._pool} == pids  # the same workers
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError):
        perfsage.predict_many([*paths, broken], weights=str(trained), workers=2)
    assert not api._POOL  # an error ends them: the next call starts clean
    _same(perfsage.predict_many(paths, weights=str(trained), workers=2), first)
    perfsage.close_workers()
    assert not api._POOL and all(not p.is_alive() for p in pool._pool)


def test_workers_must_be_positive(trained):
    with pytest.raises(UsageError):
        perfsage.predict_many(EXAMPLES, weights=str(trained), workers=0)


@pytest.mark.parametrize(("n", "workers"), [(410, 2), (128, 2), (129, 2), (1000, 3), (5, 2)])
def test_worker_chunks_are_equal_shares_in_order(n, workers):
    from perfsage.api import CHUNK, balanced_chunks

    chunks = balanced_chunks(list(range(n)), workers)
    assert [x for chunk in chunks for x in chunk] == list(range(n))
    assert len(chunks) % workers == 0 and max(map(len, chunks)) <= CHUNK
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
