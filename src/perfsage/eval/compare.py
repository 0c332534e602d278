"""Every predictor on the same splits at growing training-set sizes: `perfsage compare`.

For each size n the predictors train on the same n graphs (the first n of one seeded
shuffle of the train split, so larger sets contain the smaller ones) and early-stop on
n/9 graphs of the validation split (at most ``VAL_CAP``), a 90/10 division of the
labelled budget as in BRP-NAS's 900/100 protocol; all are scored on the whole test split.
Each (predictor, size) result is written to its own JSON file as it finishes, so a killed
run resumes where it stopped and a finished one is re-reported without retraining.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import UsageError
from perfsage.eval.metrics import summary
from perfsage.eval.plots import loglog_figure
from perfsage.predictors.graphset import GraphSet, split_sets

SIZES = (100, 300, 1000, 3000, 10000)
VAL_MIN, VAL_CAP = 20, 1000
#: Figures in the table, in order: key in ``summary``, heading, format.
COLUMNS = (("mape", "MAPE %", "{:.2f}"), ("rmspe", "RMSPE %", "{:.2f}"),
           ("within_10", "±10 %", "{:.1f}"), ("kendall_tau", "Kendall τ", "{:.3f}"))


def training_sizes(sizes: list[int], available: int) -> list[int]:
    """The sizes the data allows; the largest is the whole train split when it falls short."""
    usable = sorted({n for n in sizes if n <= available})
    if not usable or (max(sizes) > available and usable[-1] < available):
        usable.append(available)
    return usable


def draw(data: GraphSet, sizes: list[int], seed: int) -> dict[str, Any]:
    """Train / val index orders and the test set, fixed by ``seed`` for every predictor."""
    sets = split_sets(data)
    if len(sets["train"]) == 0 or len(sets["test"]) == 0:
        raise UsageError(f"only {len(data)} labelled models: too few for train and test splits")
    rng = np.random.default_rng(seed)
    return {"train": sets["train"], "val": sets["val"], "test": sets["test"],
            "train_order": rng.permutation(len(sets["train"])),
            "val_order": rng.permutation(len(sets["val"])),
            "sizes": training_sizes(sizes, len(sets["train"]))}


def _val_size(n: int, available: int) -> int:
    return min(available, VAL_CAP, max(VAL_MIN, round(n / 9)))


def run_one(name: str, settings: dict[str, Any], splits: dict[str, Any], n: int) -> dict:
    """Fit predictor ``name`` on n training graphs and score it on the test split."""
    from perfsage.predictors.registry import get_predictor

    train = splits["train"].subset(splits["train_order"][:n])
    val = splits["val"].subset(splits["val_order"][:_val_size(n, len(splits["val"]))])
    test = splits["test"]
    predictor = get_predictor(name, **settings)
    start = time.perf_counter()
    predictor.fit(train, val if len(val) else None)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = predictor.predict(test.graphs)
    predict_s = time.perf_counter() - start
    metrics = {m: summary(pred[m], test.labels[m]) for m in predictor.metrics_
               if np.all(test.labels[m] > 0) and np.ptp(splits["train"].labels[m]) > 0}
    return {"predictor": name, "settings": predictor.params, "train_graphs": len(train),
            "val_graphs": len(val), "test_graphs": len(test), "train_s": train_s,
            "predict_ms_per_graph": predict_s / len(test) * 1000, "metrics": metrics}


def compare(data: GraphSet, predictors: list[str], out: str | Path, *,
            sizes: list[int] | None = None, seed: int = 0,
            settings: dict[str, dict[str, Any]] | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """Results of every predictor at every size, trained now or read from ``out``."""
    from perfsage.predictors.registry import predictor_class

    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    splits = draw(data, list(sizes or SIZES), seed)
    jobs = [(n, name) for n in splits["sizes"] for name in predictors]
    results = []
    for i, (n, name) in enumerate(jobs):
        params = (settings or {}).get(name, {})
        path = out / "runs" / f"{name}-{n}.json"
        # Every setting in force, defaults included: a changed default is another fit.
        key = {"target": data.target, "seed": seed, "n": n,
               "settings": {**predictor_class(name).defaults(), **params}}
        if path.exists() and json.loads(path.read_text()).get("key") == key:
            results.append(json.loads(path.read_text()))
            continue
        if progress:
            progress(i, len(jobs), f"{name} on {n} graphs")
        result = {**run_one(name, params, splits, n), "key": key}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
        results.append(result)
    if progress:
        progress(len(jobs), len(jobs), "done")
    return results


def markdown(results: list[dict], target: str) -> list[str]:
    """One table per metric: predictors by row within each training size."""
    lines = []
    metrics = list(dict.fromkeys(m for r in results for m in r["metrics"]))
    for metric in metrics:
        lines += [f"**{target}: {metric}** (test split, {results[0]['test_graphs']:,} graphs)", "",
                  "| train graphs | predictor | " + " | ".join(c[1] for c in COLUMNS)
                  + " | train s | predict ms/graph |",
                  "|---|---|" + "---|" * (len(COLUMNS) + 2)]
        for r in sorted(results, key=lambda r: r["train_graphs"]):
            if metric not in r["metrics"]:
                continue
            figures = " | ".join(fmt.format(r["metrics"][metric][key]) for key, _, fmt in COLUMNS)
            lines.append(f"| {r['train_graphs']:,} | {r['predictor']} | {figures} | "
                         f"{r['train_s']:.1f} | {r['predict_ms_per_graph']:.3f} |")
        lines.append("")
    return lines


def learning_curves(results: list[dict], folder: str | Path, target: str) -> list[Path]:
    """One PNG per metric: test MAPE against training-set size, a line per predictor."""
    paths = []
    for metric in dict.fromkeys(m for r in results for m in r["metrics"]):
        path = Path(folder) / f"learning-{metric}.png"
        with loglog_figure(path, f"{target}: {metric}", "training graphs", "test MAPE %",
                           size=(5.5, 4)) as ax:
            for name in dict.fromkeys(r["predictor"] for r in results):
                points = sorted((r["train_graphs"], r["metrics"][metric]["mape"])
                                for r in results
                                if r["predictor"] == name and metric in r["metrics"])
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=name)
            ax.grid(True, which="both", linewidth=0.3)
        paths.append(path)
    return paths
