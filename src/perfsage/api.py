"""The Python API: predict a model's cost on a target from its .tflite file or bytes.

    import perfsage
    perfsage.predict("m.tflite", target="ethos-u55-128")   # {"latency_ms": ..., ...}
    perfsage.predict_many(paths, target="ethos-u55-128")   # one dict per model, batched
    perfsage.predict_many(paths, target=..., workers=2)    # parse in two processes

NumPy only: nothing here imports torch or TensorFlow.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike

from perfsage.errors import ModelFileError, UsageError
from perfsage.graph import read_model
from perfsage.graph.reader import mapped
from perfsage.predictors.features import GraphFeatures, featurize

Source = str | PathLike[str] | bytes

#: Graphs per forward pass in predict_many; bounds memory for long lists.
BATCH = 512
#: Models per task handed to a worker process: large enough to amortise the hand-over.
CHUNK = 16


def predict_many(models: Iterable[Source], target: str | None = None, *,
                 weights: str | None = None, workers: int = 1) -> list[dict[str, float]]:
    """Predict every metric of ``target`` for many models (one batched pass per 512).

    Args:
        models: paths of .tflite files, or their bytes.
        target: a target with shipped weights (see ``perfsage targets``).
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
        workers: processes that read and featurize the models; the network runs in this
            one. Worth it for hundreds of models (a process costs a few milliseconds to
            start); fewer than ``2 * CHUNK`` models are always read here.
    """
    from perfsage.predictors.shipped import load_model

    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    net = load_model(target, str(weights) if weights else None)
    results: list[dict[str, float]] = []
    batch: list[GraphFeatures] = []
    with _collector_paused():
        for graph in _featurized(models, workers):
            batch.append(graph)
            if len(batch) == BATCH:
                results += _rows(net.predict(batch))
                batch = []
        if batch:
            results += _rows(net.predict(batch))
    return results


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


def _featurized(models: Iterable[Source], workers: int) -> Iterator[GraphFeatures]:
    """Each model's features, in order: read here, or by ``workers`` processes."""
    if workers == 1:
        yield from map(_features, models)
        return
    models = list(models)
    if len(models) < 2 * CHUNK:
        yield from _featurized(models, 1)
        return
    import multiprocessing

    # Fork where there is one (the default before Python 3.14): workers start in
    # milliseconds, with everything imported, where spawning re-imports NumPy in each.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(min(workers, len(models) // CHUNK)) as pool:
        for graph in pool.imap(_features_or_error, models, chunksize=CHUNK):
            if isinstance(graph, tuple):  # (source, problem) of a ModelFileError
                raise ModelFileError(*graph)
            yield graph


def _features(source: Source) -> GraphFeatures:
    """One model's features; tensor names, quantisation and weights are not read, nor needed."""
    with mapped(source) as (contents, name):
        return featurize(read_model(contents, name=name, details=False))


def _features_or_error(source: Source) -> GraphFeatures | tuple[str, str]:
    """A worker's task; ModelFileError comes back as (source, problem), which pickles."""
    try:
        return _features(source)
    except ModelFileError as exc:
        return exc.source, exc.problem


def _rows(columns: dict) -> list[dict[str, float]]:
    names: Sequence[str] = list(columns)
    n = len(columns[names[0]]) if names else 0
    return [{m: float(columns[m][i]) for m in names} for i in range(n)]
