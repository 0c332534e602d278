"""The Python API: predict a model's cost on a target from its .tflite file or bytes.

    import perfsage
    perfsage.predict("m.tflite", target="ethos-u55-128")   # {"latency_ms": ..., ...}
    perfsage.predict_many(paths, target="ethos-u55-128")   # one dict per model, batched
    perfsage.predict_many(paths, target=..., workers=2)    # in two processes
    perfsage.predict_layers("m.tflite", target="ethos-u55-128")  # where the cost goes

NumPy only: nothing here imports torch or TensorFlow.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import accumulate
from os import PathLike
from typing import Any

from perfsage.errors import ModelFileError, UsageError
from perfsage.graph import read_model
from perfsage.graph.reader import mapped
from perfsage.predictors.features import GraphFeatures, featurize

Source = str | PathLike[str] | bytes

#: Graphs per forward pass in predict_many. Small batches keep the network's arrays in
#: cache: per graph, 32-64 ran 30 % faster than 512 (0.41 against 0.59 ms, measured side by
#: side), and bound memory for long lists.
BATCH = 64
#: Models per task handed to a worker process: large enough to amortise the hand-over
#: and give the network a reasonable batch, small enough to balance two workers.
CHUNK = 64


def predict_many(models: Iterable[Source], target: str | None = None, *,
                 weights: str | None = None, workers: int = 1) -> list[dict[str, float]]:
    """Predict every metric of ``target`` for many models (one batched pass per BATCH).

    Args:
        models: paths of .tflite files, or their bytes.
        target: a target with shipped weights (see ``perfsage targets``).
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
        workers: processes that each read, featurize and predict a share of the models.
            Worth it for hundreds of models; fewer than ``2 * CHUNK`` models are always
            predicted here. The processes stay alive for the next call with the same
            weights and count (a NAS loop's next batch); ``close_workers()`` ends them.
    """
    from threadpoolctl import threadpool_limits

    from perfsage.predictors.shipped import load_model

    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    spec = (target, str(weights) if weights else None)
    load_model(*spec)  # a bad target or weights folder fails here, before any worker starts
    models = models if workers == 1 else list(models)
    # One BLAS thread: the batches are small matrices, and a second thread only contends
    # with the other worker for the two cores (0.8 vs 0.46 ms per graph measured).
    with _collector_paused(), threadpool_limits(1):
        if workers == 1 or len(models) < 2 * CHUNK:
            return _predict_all(models, spec)
        return _predict_in_workers(models, spec, workers)


def predict_layers(model: Source, target: str, *,
                   block_weights: str | None = None) -> dict:
    """Block-by-block costs of one model from the block predictor (``--per-layer``).

    Returns ``rows`` (each block's operators, types, predicted metrics and ``share`` in % of
    each additive metric's total, then an ``overhead`` row), ``total``, ``metrics`` and
    ``peak`` (which metrics are a peak over blocks rather than a sum); see
    ``perfsage.predictors.block.layers.per_layer``.
    """
    from perfsage.predictors.block.layers import load_block_predictor, per_layer

    blocks = load_block_predictor(target, str(block_weights) if block_weights else None)
    return per_layer(read_model(model), blocks)


def _predict_all(models: Iterable[Source], spec: tuple[str | None, str | None],
                 ) -> list[dict[str, float]]:
    """Read, featurize and predict in this process, BATCH graphs per forward pass."""
    from perfsage.predictors.shipped import load_model

    net = load_model(*spec)
    results: list[dict[str, float]] = []
    batch: list[GraphFeatures] = []
    for source in models:
        batch.append(_features(source))
        if len(batch) == BATCH:
            results += _rows(net.predict(batch))
            batch = []
    if batch:
        results += _rows(net.predict(batch))
    return results


def _predict_in_workers(models: list[Source], spec: tuple[str | None, str | None],
                        workers: int) -> list[dict[str, float]]:
    """Chunks of CHUNK models predicted whole by each worker; results come back in order.

    Workers return predictions, not features: a row of metrics pickles in microseconds
    where a graph's feature arrays cost a sizeable share of featurizing it.
    """
    chunks = balanced_chunks(models, workers)
    results: list[dict[str, float]] = []
    pool = _worker_pool(spec, workers)
    try:
        for rows in pool.imap(_predict_chunk, [(c, spec) for c in chunks]):
            if isinstance(rows, tuple):  # (source, problem) of a ModelFileError
                raise ModelFileError(*rows)
            results += rows
    except BaseException:
        close_workers()  # chunks may still be running: start clean next time
        raise
    return results


#: The worker pool predict_many keeps between calls, with the (spec, workers) it serves.
_POOL: dict[tuple, Any] = {}


def _worker_pool(spec: tuple[str | None, str | None], workers: int):
    """Worker processes for ``spec``, kept alive between calls: a NAS loop calls again.

    A fresh pair of workers spends its first chunk warming up (about 75 ms: caches,
    copy-on-write pages of the parent): 410 models took 423 ms with new workers and 340 ms
    with kept ones. Other weights or another worker count replace the pool.
    """
    import multiprocessing

    key = (spec, workers)
    if key not in _POOL:
        close_workers()
        # Fork where there is one (the default before Python 3.14): workers start in
        # milliseconds, with the network already loaded, where spawning re-imports NumPy.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        _POOL[key] = context.Pool(workers, initializer=_start_worker, initargs=spec)
        atexit.unregister(close_workers)
        atexit.register(close_workers)
    return _POOL[key]


def close_workers() -> None:
    """End the worker processes that ``predict_many(..., workers=N)`` keeps between calls."""
    while _POOL:
        _, pool = _POOL.popitem()
        pool.terminate()
        pool.join()


def balanced_chunks(models: list[Source], workers: int) -> list[list[Source]]:
    """At most CHUNK models per chunk, in a multiple of ``workers`` chunks of near-equal size.

    Equal shares end the workers together: 410 models cut at 64 leave one worker a fourth
    chunk while the other waits (218 models against 192); eight chunks of 51-52 do not.
    """
    count = workers * -(-len(models) // (workers * CHUNK))  # ceil to a multiple of workers
    size, extra = divmod(len(models), count)
    cuts = list(accumulate((size + (i < extra) for i in range(count)), initial=0))
    return [models[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _start_worker(target: str | None, weights: str | None) -> None:
    """Worker set-up: the network (inherited when forked), one BLAS thread, no collector."""
    from threadpoolctl import threadpool_limits

    from perfsage.predictors.shipped import load_model

    gc.disable()
    threadpool_limits(1)
    _reuse_freed_memory()
    load_model(target, weights)


def _reuse_freed_memory() -> None:
    """Let glibc's malloc keep and reuse freed blocks in this (worker) process.

    A forward pass allocates arrays of a few MB; by default each is a fresh mapping whose
    pages the kernel faults in and zeroes again, and the heap is trimmed back to the system
    in between. Keeping them cut the forward time by 13 % (0.45 to 0.39 ms per graph,
    measured side by side). Process-wide, so only in the worker processes this module owns;
    elsewhere than glibc there is nothing to set.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: blocks under 64 MB come from the heap
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB of free heap


def _predict_chunk(task: tuple[list[Source], tuple[str | None, str | None]],
                   ) -> list[dict[str, float]] | tuple[str, str]:
    """A worker's task; a ModelFileError comes back as (source, problem), which pickles."""
    chunk, spec = task
    try:
        return _predict_all(chunk, spec)
    except ModelFileError as exc:
        return exc.source, exc.problem


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block (and in workers forked in it).

    Reading a model allocates thousands of objects, each pass of the collector walks them
    all, and none of them form cycles: reference counting frees every one. The passes cost
    5 to 8% of prediction time, for nothing; the caller's setting comes back after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def predict(model: Source, target: str | None = None, *,
            weights: str | None = None) -> dict[str, float]:
    """Predict every metric of ``target`` for one model."""
    return predict_many([model], target, weights=weights)[0]


def _features(source: Source) -> GraphFeatures:
    """One model's features; tensor names, quantisation and weights are not read, nor needed."""
    with mapped(source) as (contents, name):
        return featurize(read_model(contents, name=name, details=False))


def _rows(columns: dict) -> list[dict[str, float]]:
    names: Sequence[str] = list(columns)
    n = len(columns[names[0]]) if names else 0
    return [{m: float(columns[m][i]) for m in names} for i in range(n)]
