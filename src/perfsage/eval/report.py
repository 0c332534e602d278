"""Evaluation reports: per metric and per search space, as a table, JSON and scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perfsage.eval.metrics import summary
from perfsage.eval.plots import loglog_figure


def evaluate(pred: dict[str, np.ndarray], true: dict[str, np.ndarray], spaces: np.ndarray,
             metrics: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``{metric: {space or "all": figures}}`` for the metrics that are never zero."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in metrics:
        if np.any(true[m] <= 0):
            continue  # percentage errors are undefined where the measured value is 0
        per = {"all": summary(pred[m], true[m])}
        for space in sorted(set(spaces.tolist())):
            mask = spaces == space
            per[space] = summary(pred[m][mask], true[m][mask])
        out[m] = per
    return out


def scatter_plots(pred: dict[str, np.ndarray], true: dict[str, np.ndarray],
                  spaces: np.ndarray, metrics: list[str], folder: str | Path,
                  title: str) -> list[Path]:
    """One log-log predicted-vs-measured PNG per metric, coloured by search space."""
    paths = []
    for m in metrics:
        if np.any(true[m] <= 0) or np.any(pred[m] <= 0):
            continue
        path = Path(folder) / f"scatter-{m}.png"
        with loglog_figure(path, f"{title}: {m}", f"measured {m}", f"predicted {m}") as ax:
            for space in sorted(set(spaces.tolist())):
                mask = spaces == space
                ax.scatter(true[m][mask], pred[m][mask], s=4, alpha=0.5, label=space)
            lo = min(true[m].min(), pred[m].min())
            hi = max(true[m].max(), pred[m].max())
            ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        paths.append(path)
    return paths
