"""The Python API: predict a model's cost on a target from its .tflite file or bytes.

    import perfsage
    perfsage.predict("m.tflite", target="ethos-u55-128")   # {"latency_ms": ..., ...}
    perfsage.predict_many(paths, target="ethos-u55-128")   # one dict per model, batched
    perfsage.predict_many(paths, target=..., workers=2)    # in two processes
    perfsage.predictions(paths, target="ethos-u55-128")    # with each model's notes
    perfsage.predict_layers("m.tflite", target="ethos-u55-128")  # where the cost goes
    perfsage.api.search("keyword-spotting", "ethos-u55-128", {"latency_ms": 0.3}, out="d")

Every function goes through one :class:`perfsage.pipeline.Pipeline`, as the CLI does.

NumPy only: nothing here imports torch or TensorFlow.
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from itertools import accumulate
from os import PathLike
from typing import Any

from perfsage.errors import PerfSageError, UsageError
from perfsage.pipeline import DEFAULT_LEVEL, Pipeline, Prediction, Source, source_name

#: Graphs per forward pass in predict_many. Small batches keep the network's arrays in
#: cache: per graph, 32-64 ran 30 % faster than 512 (0.41 against 0.59 ms, measured side by
#: side), and bound memory for long lists.
BATCH = 64
#: Models per task handed to a worker process: large enough to amortise the hand-over
#: and give the network a reasonable batch, small enough to balance two workers.
CHUNK = 64


def pipeline(target: str | None = None, weights: str | PathLike[str] | None = None) -> Pipeline:
    """The (cached) :class:`Pipeline` of a target's shipped weights or a weights folder."""
    return _pipeline(target, str(weights) if weights is not None else None)


@cache
def _pipeline(target: str | None, weights: str | None) -> Pipeline:
    return Pipeline(target, weights)


def predict_many(models: Iterable[Source], target: str | None = None, *,
                 weights: str | PathLike[str] | None = None, workers: int = 1,
                 ) -> list[dict[str, float]]:
    """Predict every metric of ``target`` for many models (one batched pass per BATCH).

    The fast path a search loop calls: figures only. :func:`predictions` adds each model's
    notes.

    Args:
        models: paths of .tflite files, or their bytes.
        target: a target with shipped weights (see ``perfsage targets``).
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
        workers: processes that each read, featurize and predict a share of the models.
            Worth it for hundreds of models; fewer than ``2 * CHUNK`` models are always
            predicted here. The processes stay alive for the next call with the same
            weights and count (a NAS loop's next batch); ``close_workers()`` ends them.
    """
    if not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a whole number of at least 1, not {workers!r}")
    if isinstance(models, str | PathLike | bytes):
        raise UsageError("predict_many takes a list of models; use predict() for one")
    spec = (target, str(weights) if weights is not None else None)
    _pipeline(*spec)  # a bad target or weights folder fails here, before any worker starts
    models = models if workers == 1 else list(models)
    with _collector_paused(), _one_blas_thread():
        if workers == 1 or len(models) < 2 * CHUNK:
            return _predict_all(models, spec)
        return _predict_in_workers(models, spec, workers)


def predict(model: Source, target: str | None = None, *,
            weights: str | PathLike[str] | None = None) -> dict[str, float]:
    """Predict every metric of ``target`` for one model: ``{"latency_ms": ..., ...}``."""
    return predict_many([model], target, weights=weights)[0]


def predictions(models: Iterable[Source], target: str | None = None, *,
                weights: str | PathLike[str] | None = None, level: float | None = DEFAULT_LEVEL,
                measure_if_unsure: float | None = None, timeout_s: float = 120.0,
                workers: int = 1, read: list[tuple[Any, Any]] | None = None,
                ) -> list[Prediction]:
    """Figures with intervals, exact figures and notes per model (``Prediction`` objects).

    Args:
        models: paths of .tflite files, or their bytes.
        target: a target with shipped weights.
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
        level: the share of true values each interval should cover (None: no intervals).
        measure_if_unsure: measure with the real tool (Vela, TFLite Micro) each model whose
            latency interval is wider than this, relative to the prediction; its
            ``source`` is then ``"measured"``. None measures nothing.
        timeout_s: the real tool's limit per model, in seconds.
        workers: processes measuring at once.
        read: the models as this target's pipeline read them already
            (``pipeline(target).read(model)``), so they are not read twice.
    """
    if isinstance(models, str | PathLike | bytes):
        models = [models]
    pipe, models = pipeline(target, weights), list(models)
    with _collector_paused(), _one_blas_thread():
        return pipe.predict(models, level=level, measure_if_unsure=measure_if_unsure,
                            timeout_s=timeout_s, workers=workers, read=read)


def predict_layers(model: Source, target: str | None = None, *,
                   weights: str | PathLike[str] | None = None) -> dict[str, Any]:
    """Where one model's cost goes, operator by operator, from the same network as its totals.

    See :meth:`perfsage.pipeline.Pipeline.per_operator`; the rows and the ``overhead`` add
    up to what :func:`predict` returns for the split metrics.
    """
    pipe = pipeline(target, weights)
    ir, graph = pipe.read(model, details=True)
    return pipe.per_operator(ir, graph)


def search(space: str, target: str, budgets: Mapping[str, float] | Iterable[str], *,
           count: int = 3, objective: str | Callable[[Any], float] | None = None,
           generations: int = 30, population: int = 64, seed: int = 0,
           level: float | None = DEFAULT_LEVEL, compress: bool = True, verify: bool = True,
           out: str | PathLike[str] | None = None, weights: str | PathLike[str] | None = None,
           timeout_s: float = 120.0, workers: int = 1,
           progress: Callable[[int, int], Any] | None = None) -> Any:
    """The ``count`` best models of a search space that meet every budget on ``target``.

    Regularised evolution over the space's architecture choices and each weighted layer's
    sparsity and bit-width, with this pipeline's predictions as its cost model; see
    :mod:`perfsage.udc.evolution` and docs/udc.md.

    Args:
        space: a search space (``perfsage dataset generate --help`` lists them).
        target: a target with shipped weights.
        budgets: metric -> most it may reach, e.g. ``{"latency_ms": 0.3, "sram_kib": 64}``
            (or ``["latency_ms=0.3", ...]``). A candidate is within budget only when the
            upper end of each metric's prediction interval is.
        count: how many candidates to return.
        objective: what to maximise among candidates within budget: ``"params"`` (the
            default: effective int8 weights), ``"macs"`` (both are proxies for accuracy,
            not accuracy), a ``"module:function"`` or a callable taking a
            :class:`~perfsage.udc.evolution.Candidate` and returning a number.
        generations: populations of children after the first.
        population: candidates alive at a time, and children per generation.
        seed: the search's random seed.
        level: the intervals' coverage; None checks budgets on the figures alone.
        compress: also search each weighted layer's sparsity and bit-width.
        verify: measure the best candidates with the target's real tool (Vela on Ethos-U)
            and drop those that break a budget.
        out: a folder for the models, results.json/.csv, evaluated.csv and pareto.png.
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
        timeout_s: the real tool's limit per model, in seconds.
        workers: processes building candidate models (building is most of the time).
        progress: called with (candidates evaluated, candidates planned) after each batch.

    Returns:
        A :class:`~perfsage.udc.evolution.SearchResult`: ``candidates`` (best first),
        ``dropped``, ``evaluated``, ``timing``; ``as_dict()`` for JSON.
    """
    from perfsage.udc.evolution import search as run_search

    with _collector_paused(), _one_blas_thread():
        return run_search(space, target, budgets, count=count, objective=objective,
                          generations=generations, population=population, seed=seed,
                          level=level, compress=compress, verify=verify, out=out,
                          weights=weights, timeout_s=timeout_s, workers=workers,
                          progress=progress)


def _predict_all(models: Iterable[Source], spec: tuple[str | None, str | None],
                 ) -> list[dict[str, float]]:
    """Read, featurize and predict in this process, BATCH graphs per forward pass."""
    pipe = _pipeline(*spec)
    results: list[dict[str, float]] = []
    irs, graphs, names = [], [], []
    for source in models:
        model, graph = pipe.read(source)
        irs.append(model)
        graphs.append(graph)
        names.append(source_name(source))
        if len(graphs) == BATCH:
            results += pipe.figures(irs, graphs, names)
            irs, graphs, names = [], [], []
    results += pipe.figures(irs, graphs, names)
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
            if isinstance(rows, PerfSageError):  # a bad model: the whole call fails
                raise rows
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
    """Worker set-up: the pipeline (inherited when forked), one BLAS thread, no collector."""
    gc.disable()
    _blas_controller().limit(limits=1, user_api="blas")
    _reuse_freed_memory()
    _pipeline(target, weights)


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
                   ) -> list[dict[str, float]] | PerfSageError:
    """A worker's task; a user-facing error comes back as a value (it pickles)."""
    chunk, spec = task
    try:
        return _predict_all(chunk, spec)
    except PerfSageError as exc:
        return exc


@cache
def _blas_controller():
    """Threadpoolctl's view of the loaded BLAS libraries, inspected once per process.

    Building it walks every loaded shared library (about 10 ms); limiting threads through a
    kept controller costs microseconds, so every call can afford it.
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread for the block.

    The matrices are small (a batch of operators by 128 features): more threads only contend
    for the cores, with the other worker or with whatever else runs (a MobileNetV2-224's
    forward pass took 80 ms instead of 1 ms on a loaded machine). The command line already
    starts NumPy with one thread, and then there is nothing to limit.
    """
    if os.environ.get("OPENBLAS_NUM_THREADS") == "1":
        yield
        return
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


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
