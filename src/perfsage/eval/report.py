"""Evaluation reports: per metric and per search space, as a table, JSON and scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perfsage.eval.metrics import summary


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in metrics:
        if np.any(true[m] <= 0) or np.any(pred[m] <= 0):
            continue
        fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
        for space in sorted(set(spaces.tolist())):
            mask = spaces == space
            ax.scatter(true[m][mask], pred[m][mask], s=4, alpha=0.5, label=space)
        lo = min(true[m].min(), pred[m].min())
        hi = max(true[m].max(), pred[m].max())
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {m}")
        ax.set_ylabel(f"predicted {m}")
        ax.set_title(f"{title}: {m}", fontsize=9)
        ax.legend(fontsize=7, markerscale=3)
        fig.tight_layout()
        path = folder / f"scatter-{m}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
