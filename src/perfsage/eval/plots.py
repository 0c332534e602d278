"""Log-log figures saved as PNG, headless: the one place that sets matplotlib up."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loglog_figure(path: str | Path, title: str, xlabel: str, ylabel: str,
                  size: tuple[float, float] = (5, 5)):
    """Yield log-log axes; on exit add the labels and a legend and write ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=size, dpi=110)
    try:
        yield ax
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, markerscale=2)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
