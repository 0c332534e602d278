"""The Python API: predict a model's cost on a target from its .tflite file or bytes.

    import perfsage
    perfsage.predict("m.tflite", target="ethos-u55-128")   # {"latency_ms": ..., ...}
    perfsage.predict_many(paths, target="ethos-u55-128")   # one dict per model, batched

NumPy only: nothing here imports torch or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike

from perfsage.graph import read_model
from perfsage.predictors.features import featurize

Source = str | PathLike[str] | bytes

#: Graphs per forward pass in predict_many; bounds memory for long lists.
BATCH = 512


def predict_many(models: Iterable[Source], target: str | None = None, *,
                 weights: str | None = None) -> list[dict[str, float]]:
    """Predict every metric of ``target`` for many models (one batched pass per 512).

    Args:
        models: paths of .tflite files, or their bytes.
        target: a target with shipped weights (see ``perfsage targets``).
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
    """
    from perfsage.predictors.shipped import load_model

    net = load_model(target, str(weights) if weights else None)
    results: list[dict[str, float]] = []
    batch = []
    for source in models:
        batch.append(featurize(read_model(source)))
        if len(batch) == BATCH:
            results += _rows(net.predict(batch))
            batch = []
    if batch:
        results += _rows(net.predict(batch))
    return results


def predict(model: Source, target: str | None = None, *,
            weights: str | None = None) -> dict[str, float]:
    """Predict every metric of ``target`` for one model."""
    return predict_many([model], target, weights=weights)[0]


def _rows(columns: dict) -> list[dict[str, float]]:
    names: Sequence[str] = list(columns)
    n = len(columns[names[0]]) if names else 0
    return [{m: float(columns[m][i]) for m in names} for i in range(n)]
