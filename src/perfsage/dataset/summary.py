"""Summaries of a dataset for `dataset info`: counts, ranges and text histograms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfsage.dataset.store import Store


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts per bin; ``edges`` has one more entry than ``counts``."""

    edges: list[float]
    counts: list[int]
    log: bool

    def lines(self, width: int = 40, unit: str = "") -> list[str]:
        """One text line per bin: range, bar, count."""
        top = max(self.counts) if self.counts else 0
        out = []
        for lo, hi, n in zip(self.edges, self.edges[1:], self.counts, strict=False):
            bar = "█" * (round(width * n / top) if top else 0)
            out.append(f"{_short(lo):>7}–{_short(hi):<7}{unit} {bar} {n}")
        return out


def _short(x: float) -> str:
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= limit:
            return f"{x / limit:.3g}{suffix}"
    return f"{x:.3g}"


def histogram(values: list[float] | np.ndarray, bins: int = 12, log: bool = True) -> Histogram:
    """Histogram with log-spaced bins for quantities spanning orders of magnitude."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return Histogram([], [], log)
    lo, hi = float(v.min()), float(v.max())
    if log and lo > 0:
        edges = np.logspace(math.log10(lo), math.log10(hi) if hi > lo else math.log10(lo) + 1,
                            bins + 1)
        edges[0], edges[-1] = lo, max(hi, edges[-1])  # no rounding may drop the extremes
    else:  # integer quantities: whole-number bins
        step = max(1, math.ceil((hi - lo + 1) / bins))
        edges = np.arange(lo, hi + step + 1, step)
    counts, edges = np.histogram(v, bins=edges)
    return Histogram(edges.tolist(), counts.tolist(), log)


def model_columns(store: Store) -> dict[str, dict[str, np.ndarray]]:
    """Per space (and "all"), the MACs, params and op counts of every stored model."""
    per: dict[str, dict[str, list[int]]] = {}
    for space, macs, params, ops in store.model_sizes():
        for key in (space, "all"):
            cols = per.setdefault(key, {"macs": [], "params": [], "ops": []})
            cols["macs"].append(macs)
            cols["params"].append(params)
            cols["ops"].append(ops)
    return {k: {c: np.asarray(v) for c, v in cols.items()} for k, cols in per.items()}


def label_coverage(store: Store) -> dict[str, dict[str, int]]:
    """Per target, how many models have each label status (ok, error, timeout)."""
    return store.label_counts()


def label_metrics(store: Store) -> dict[str, dict[str, np.ndarray]]:
    """Per target and metric, the values of every successful label."""
    out: dict[str, dict[str, list[float]]] = {}
    for target, metrics in store.ok_metrics():
        per = out.setdefault(target, {})
        for name, value in metrics.items():
            per.setdefault(name, []).append(value)
    return {t: {m: np.asarray(v, dtype=float) for m, v in per.items()} for t, per in out.items()}
