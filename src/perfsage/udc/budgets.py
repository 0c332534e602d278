"""Hardware budgets a searched model must meet: ``latency_ms=0.3``, ``sram_kib=64``.

A budget names a metric of the target (units live in the name) and the most it may reach.
Parsed once into :class:`Budget` objects, so the search never reads a loose string twice.
A prediction meets a budget only when its interval's upper end does: the interval is how
wrong the predictor may be, and a candidate that fits only on its point estimate fails on
the device often enough to be worth nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from perfsage.errors import UsageError

#: Metrics measured in counts, where a budget of 0 makes sense (no operator on the CPU).
_COUNT_UNITS = ("_ops", "_cycles")


@dataclass(frozen=True, slots=True)
class Budget:
    """The most ``metric`` may reach on the target, in the metric's unit."""

    metric: str
    limit: float

    def __str__(self) -> str:
        return f"{self.metric}={self.limit:g}"


def parse_budgets(budgets: Mapping[str, float] | Iterable[str], metrics: Iterable[str],
                  target: str) -> tuple[Budget, ...]:
    """Budgets from ``{"latency_ms": 0.3}`` or ``["latency_ms=0.3", ...]``, checked.

    Args:
        budgets: metric -> limit, or ``METRIC=VALUE`` strings (the command line's form).
        metrics: the metrics the target's predictor gives.
        target: the target's name, for messages.

    Raises:
        UsageError: no budget, an unknown metric, a metric given twice, a value that is
            not a finite positive number.
    """
    metrics = list(metrics)
    pairs = list(budgets.items()) if isinstance(budgets, Mapping) else [
        _split(text) for text in _strings(budgets)]
    if not pairs:
        raise UsageError(f"give at least one budget, e.g. --budget latency_ms=0.3; metrics "
                         f"of {target}: {', '.join(metrics)}")
    out: dict[str, Budget] = {}
    for metric, value in pairs:
        if metric not in metrics:
            raise UsageError(f"budget: unknown metric {metric!r} for {target}; choose from: "
                             f"{', '.join(metrics)}")
        if metric in out:
            raise UsageError(f"budget: {metric} is given twice ({out[metric].limit:g} and "
                             f"{value}); give each metric once")
        out[metric] = Budget(metric, _limit(metric, value))
    return tuple(out.values())


def _strings(budgets: Iterable[str]) -> list[str]:
    if isinstance(budgets, str):
        return [budgets]
    texts = list(budgets)
    for text in texts:
        if not isinstance(text, str):
            raise UsageError(f"budget: {text!r} is not METRIC=VALUE text; pass a dict "
                             "{metric: limit} or strings such as 'latency_ms=0.3'")
    return texts


def _split(text: str) -> tuple[str, str]:
    metric, sep, value = text.partition("=")
    if not sep or not metric.strip() or not value.strip():
        raise UsageError(f"budget: {text!r} is not METRIC=VALUE; write e.g. latency_ms=0.3 "
                         "(the unit is the metric name's suffix)")
    return metric.strip(), value.strip()


def _limit(metric: str, value: object) -> float:
    """The budget's value as a float: finite, positive (zero allowed for counts)."""
    try:
        limit = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"budget: {metric}={value!r} is not a number; the unit is in the "
                         f"metric's name, so write the number alone") from None
    if isinstance(value, bool) or not math.isfinite(limit):
        raise UsageError(f"budget: {metric}={value!r} is not a finite number")
    floor_ok = limit >= 0 if metric.endswith(_COUNT_UNITS) else limit > 0
    if not floor_ok:
        raise UsageError(f"budget: {metric}={value} must be more than 0"
                         + (" (or 0 for a count)" if metric.endswith(_COUNT_UNITS) else ""))
    return limit
