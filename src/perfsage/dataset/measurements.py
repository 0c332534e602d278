"""A user's own measurements: a CSV of model files and the figures measured on their board.

    model,latency_ms,arena_kib
    models/net_a.tflite,12.7,310.5
    /abs/path/net_b.onnx,48.1,902.0

``model`` is a path, relative to the CSV's folder or absolute, in any format PerfSAGE reads
(``perfsage.convert``); every other column is a metric, named with its unit as the targets
name theirs (``latency_ms``, ``energy_mj``, ``arena_kib``...). A model listed twice (the
same file measured again) becomes one row whose figures are the medians of its rows, so
repeats reduce noise instead of leaking one model into both sides of a cross-validation.

Everything a user can get wrong here is one :class:`~perfsage.errors.UsageError` naming the
file, the line and the fix: a missing file, an unknown column, an empty, non-numeric or
negative cell, too few models. Nothing here converts or reads a model; that is the
predictors' side (``perfsage.predictors.adapt``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfsage.errors import UsageError

MODEL_COLUMN = "model"
#: Fewer distinct models than this cannot be cross-validated (five folds of one).
MIN_MODELS = 5


def known_metrics() -> dict[str, str]:
    """Every metric a registered target measures -> the targets that do, comma-joined."""
    from perfsage.targets.registry import target_class, target_names

    found: dict[str, list[str]] = {}
    for name in target_names():
        for metric in target_class(name).metrics:
            found.setdefault(metric, []).append(name)
    return {m: ", ".join(t) for m, t in found.items()}


@dataclass(frozen=True)
class Measurements:
    """One row per distinct model file: its path and each metric's (median) figure."""

    source: Path  # the CSV
    paths: tuple[Path, ...]  # each model, resolved against the CSV's folder
    labels: dict[str, np.ndarray]  # metric -> float64 [models], in column order
    repeats: np.ndarray  # int64 [models]: rows of the CSV each model had

    def __len__(self) -> int:
        return len(self.paths)


def read_measurements(path: str | Path, *, least: int = MIN_MODELS) -> Measurements:
    """The models and figures of a measurements CSV, checked cell by cell.

    Args:
        path: the CSV.
        least: the fewest distinct models accepted.

    Raises:
        UsageError: one line naming the file (and line) and what to change.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise UsageError(f"{path}: no such measurements file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder; give the measurements CSV") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: not a CSV file ({exc})") from None
    metrics = _metric_columns(path, header)
    by_model: dict[Path, list[list[float]]] = {}
    for line, row in rows:
        row = {(k or "").strip(): v for k, v in row.items()}
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        model = _model_path(path, line, row.get(MODEL_COLUMN))
        by_model.setdefault(model, []).append(
            [_figure(path, line, m, row.get(m)) for m in metrics])
    if len(by_model) < least:
        raise UsageError(f"{path}: {len(by_model)} distinct model(s); adapting needs at least "
                         f"{least} (more give better figures: 20 or more is a good start)")
    figures = np.array([np.median(np.array(v), axis=0) for v in by_model.values()])
    return Measurements(source=path, paths=tuple(by_model),
                        labels={m: figures[:, i].astype(np.float64)
                                for i, m in enumerate(metrics)},
                        repeats=np.array([len(v) for v in by_model.values()], dtype=np.int64))


def _metric_columns(path: Path, header: list[str]) -> list[str]:
    """The metric columns of a header, each one a metric some target measures."""
    if MODEL_COLUMN not in header:
        raise UsageError(f"{path}: no {MODEL_COLUMN!r} column (the header has: "
                         f"{', '.join(header) or 'nothing'}); the first line must name a "
                         f"'{MODEL_COLUMN}' column of model paths and one column per metric")
    known = known_metrics()
    metrics = []
    for column in header:
        if column == MODEL_COLUMN:
            continue
        if column not in known:
            raise UsageError(f"{path}: unknown column {column!r}; metric columns are named "
                             f"with their unit, one of: {', '.join(known)}")
        if column in metrics:
            raise UsageError(f"{path}: column {column!r} appears twice")
        metrics.append(column)
    if not metrics:
        raise UsageError(f"{path}: no metric column; add one per measured metric, e.g. "
                         "latency_ms")
    return metrics


def _model_path(path: Path, line: int, value: str | None) -> Path:
    """A row's model, resolved against the CSV's folder; it must exist."""
    text = (value or "").strip()
    if not text:
        raise UsageError(f"{path}:{line}: empty '{MODEL_COLUMN}' cell; give the model's path")
    model = Path(text).expanduser()
    if not model.is_absolute():
        model = path.resolve().parent / model
    if not model.exists():
        raise UsageError(f"{path}:{line}: model file {text!r} not found (looked for {model}; "
                         "relative paths are read from the CSV's folder)")
    return model.resolve()


def _figure(path: Path, line: int, metric: str, value: str | None) -> float:
    """A cell's figure: a finite number, 0 or more."""
    text = (value or "").strip()
    if not text:
        raise UsageError(f"{path}:{line}: empty {metric!r} cell; every model needs every "
                         "metric (split the CSV per metric otherwise)")
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{path}:{line}: {metric} {text!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"{path}:{line}: {metric} {text!r} must be a finite number, 0 or "
                         "more")
    return number
