"""`perfsage evaluate`: accuracy of trained weights per metric and search space."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perfsage.cli import format as fmt
from perfsage.cli.options import folder


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage evaluate`."""
    parser.add_argument("weights", type=Path, metavar="WEIGHTS",
                        help="weights folder from `perfsage train`")
    parser.add_argument("dataset", type=Path, metavar="DATASET",
                        help="dataset folder (perfsage dataset generate)")
    parser.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                        help="which split to score (test)")
    parser.add_argument("--plots", type=folder, metavar="DIR",
                        help="folder for scatter plots (PNG); default WEIGHTS/plots-SPLIT")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")


def run(args: argparse.Namespace) -> int:
    """Accuracy per metric and search space: MAPE, RMSPE, ±5 %, ±10 %, Kendall τ."""
    from rich.table import Table

    from perfsage.eval.report import evaluate as score
    from perfsage.eval.report import scatter_plots
    from perfsage.pipeline import Pipeline
    from perfsage.predictors.graphset import load_graphset, splits, without_rare_zeros

    weights, split = args.weights, args.split
    pipe = Pipeline(weights=weights)
    model = pipe.network
    # As in training: graphs whose label is 0 in a metric almost never 0 (the models Vela
    # leaves wholly on the CPU, which prediction reports as such) have no relative error.
    # Judged over the whole dataset: a held-out space can hold more of them than is rare.
    data = without_rare_zeros(load_graphset(args.dataset, model.target))
    holdout = model.spec.holdout_space
    if split != "all":
        data = data.subset(splits(data, holdout)[split])
    pred = pipe.columns(data.graphs)
    report = score(pred, data.labels, data.spaces, model.metrics)
    scatter_plots(pred, data.labels, data.spaces, list(report),
                  args.plots or weights / f"plots-{split}",
                  f"{model.target}, {split} split")
    if args.as_json:
        print(json.dumps({"target": model.target, "split": split, "metrics": report}, indent=1))
        return 0
    table = Table(title=f"{model.target}: {split} split ({len(data)} models)",
                  title_justify="left")
    for name in ("metric", "space", "n", "MAPE %", "RMSPE %", "±5 %", "±10 %", "Kendall τ"):
        table.add_column(name, justify="left" if name in ("metric", "space") else "right")
    for metric, per in report.items():
        for space, r in per.items():
            table.add_row(metric, space, str(r["n"]), f"{r['mape']:.2f}", f"{r['rmspe']:.2f}",
                          f"{r['within_5']:.1f}", f"{r['within_10']:.1f}",
                          f"{r['kendall_tau']:.3f}")
    fmt.console().print(table)
    return 0
