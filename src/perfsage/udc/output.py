"""A search's files: the candidates' .tflite, results.json and .csv, evaluated.csv, pareto.png.

``results.json`` is the whole record (settings, every reported candidate with its config,
compression, prediction, interval and measurement, timing); ``results.csv`` the same
candidates as a table; ``evaluated.csv`` one row per candidate the search evaluated, which
is what ``pareto.png`` draws.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from perfsage.udc.evolution import Candidate, SearchResult

#: Model files of a search are named ``candidate_<rank>.tflite``; a new search in the same
#: folder replaces them all, so no file of an earlier, longer list is left to mislead.
MODEL_GLOB = "candidate_*.tflite"


def write_outputs(result: SearchResult, folder: Path) -> dict[int, str]:
    """Write every file of a search into ``folder``; returns candidate id -> file name."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(MODEL_GLOB):
        old.unlink()
    files: dict[int, str] = {}
    for rank, candidate in enumerate(result.candidates, 1):
        name = f"candidate_{rank}.tflite"
        (folder / name).write_bytes(candidate.tflite)
        files[id(candidate)] = name
    (folder / "results.json").write_text(
        json.dumps(result.as_dict(files), indent=1, allow_nan=False) + "\n")
    _write_results_csv(result, files, folder / "results.csv")
    _write_evaluated_csv(result, folder / "evaluated.csv")
    pareto_plot(result, folder / "pareto.png")
    return files


def _budget_columns(result: SearchResult, candidate: Candidate) -> dict[str, object]:
    row: dict[str, object] = {}
    for b in result.budgets:
        interval = (candidate.prediction.interval or {}).get(b.metric)
        row[f"{b.metric}_predicted"] = candidate.predicted.get(b.metric)
        row[f"{b.metric}_interval_high"] = interval[1] if interval else None
        row[f"{b.metric}_measured"] = (candidate.measured or {}).get(b.metric)
        row[f"{b.metric}_budget"] = b.limit
    return row


def _compression_columns(candidate: Candidate) -> dict[str, object]:
    return {"sparsity": candidate.sparsity, "min_bits": candidate.min_bits}


def _write_results_csv(result: SearchResult, files: dict[int, str], path: Path) -> None:
    rows = []
    for rank, c in enumerate(result.candidates, 1):
        rows.append({"rank": rank, "file": files.get(id(c), ""), "status": c.status,
                     "reason": c.reason, "objective": c.objective, "macs": c.arch.macs,
                     "params": c.arch.params, **_compression_columns(c),
                     **_budget_columns(result, c), "sha256": c.sha256})
    for c in result.dropped:
        rows.append({"rank": "", "file": "", "status": c.status, "reason": c.reason,
                     "objective": c.objective, "macs": c.arch.macs, "params": c.arch.params,
                     **_compression_columns(c), **_budget_columns(result, c),
                     "sha256": c.sha256})
    _write_csv(path, rows)


def _write_evaluated_csv(result: SearchResult, path: Path) -> None:
    rows = [{"order": c.order, "within_budget": int(c.within_budget), "objective": c.objective,
             "violation": c.violation, "macs": c.arch.macs, "params": c.arch.params,
             **_compression_columns(c),
             **{k: v for k, v in _budget_columns(result, c).items()
                if not k.endswith(("_measured", "_budget"))}}
            for c in result.evaluated]
    _write_csv(path, rows)


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def pareto_plot(result: SearchResult, path: Path) -> None:
    """Objective against each budgeted metric: every candidate, the front, the verified.

    One panel per budget, log-log (the objective on a linear scale when some value is not
    positive, as a user's may be). Grey: outside a budget by its interval; blue: within
    every budget; the line joins the non-dominated ones (least metric, most objective);
    stars are the reported candidates at their measured value, crosses the dropped ones.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(result.budgets)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2), dpi=110, squeeze=False)
    scored = [c for c in result.evaluated if c.objective is not None]
    log_objective = all(c.objective > 0 for c in scored)
    try:
        for ax, budget in zip(axes[0], result.budgets, strict=True):
            metric = budget.metric
            points = [(c.predicted[metric], c.objective, c.within_budget) for c in scored
                      if c.predicted.get(metric, 0) > 0]
            outside = [(x, y) for x, y, ok in points if not ok]
            inside = [(x, y) for x, y, ok in points if ok]
            if outside:
                ax.scatter(*_xy(outside), s=4, c="0.75", label="outside a budget")
            if inside:
                ax.scatter(*_xy(inside), s=6, c="tab:blue", label="within budgets")
                front = _front(inside)
                ax.step(*_xy(front), where="post", c="tab:blue", lw=1, label="Pareto front")
            for group, style in ((result.candidates, dict(marker="*", s=90, c="tab:red",
                                                          label="reported (measured)")),
                                 (result.dropped, dict(marker="x", s=40, c="k",
                                                       label="dropped (measured)"))):
                shown = [((c.measured or c.predicted).get(metric), c.objective) for c in group]
                shown = [(x, y) for x, y in shown if x and y is not None]
                if shown:
                    ax.scatter(*_xy(shown), zorder=3, **style)
            ax.axvline(budget.limit, ls="--", c="tab:red", lw=1, label=f"budget {budget}")
            ax.set_xscale("log")
            ax.set_yscale("log" if log_objective else "linear")
            ax.set_xlabel(f"{metric} (predicted; measured for stars)")
            ax.set_ylabel(f"objective: {result.objective.name}"
                          + (" (a proxy)" if result.objective.proxy else ""))
            ax.legend(fontsize=6, markerscale=1.5)
        fig.suptitle(f"search {result.space} on {result.target}: {len(result.evaluated):,} "
                     f"candidates", fontsize=9)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


def _front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other beats on both: less metric and more objective, by rising metric."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front
