"""Turn repeated timed runs into robust latency figures, and judge whether they are stable.

The median is the label (robust to the odd preempted run); p10/p90 and the coefficient of
variation say how much to trust it. A round whose p10-p90 spread is wide relative to the
median was disturbed, and the caller measures again (up to a bound), keeping the round with
the narrowest spread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Summary of one round of timed runs, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float  # standard deviation / mean
    runs: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: 0 for perfectly repeatable runs."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else 0.0


def summarize(seconds: Sequence[float]) -> LatencyStats:
    """Statistics of one round of run times given in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timed runs to summarize")
    mean = float(ms.mean())
    return LatencyStats(
        median_ms=float(np.median(ms)),
        p10_ms=float(np.percentile(ms, 10)),
        p90_ms=float(np.percentile(ms, 90)),
        cv=float(ms.std() / mean) if mean > 0 else 0.0,
        runs=int(ms.size),
    )


def stable_round(run_round: Callable[[], Sequence[float]], *, max_spread: float,
                 max_rounds: int) -> tuple[LatencyStats, int]:
    """Time rounds until one has spread <= ``max_spread`` or ``max_rounds`` are done.

    Returns:
        The round with the narrowest spread, and how many rounds were timed.
    """
    best: LatencyStats | None = None
    for done in range(1, max_rounds + 1):
        stats = summarize(run_round())
        if best is None or stats.spread < best.spread:
            best = stats
        if stats.spread <= max_spread:
            return best, done
    assert best is not None
    return best, max_rounds
