"""`perfsage predict`: every metric of a target for TFLite models, from the shipped weights.

Runs on NumPy alone (no torch, no TensorFlow), so a cold start costs well under two seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from perfsage.cli import format as fmt


def predict(
    models: Annotated[list[Path], typer.Argument(help="One or more .tflite files.",
                                                 show_default=False)],
    target: Annotated[str, typer.Option("--target", "-t", help="Hardware target.")],
    weights: Annotated[Path | None, typer.Option(
        help="Weights folder from `perfsage train` (default: the shipped weights).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Predict latency, energy and memory of models on a target, without running a tool."""
    from rich.table import Table

    from perfsage.errors import PerfSageError
    from perfsage.graph import read_model
    from perfsage.predictors.features import featurize
    from perfsage.predictors.shipped import load_model
    from perfsage.targets.registry import target_class

    metric_info = target_class(target).metrics  # unknown target: one clear line
    net = load_model(target, str(weights) if weights else None)
    graphs, names, failed, notes = [], [], False, {}
    err = fmt.console(stderr=True)
    for path in models:
        try:
            model = read_model(path, details=False)
        except PerfSageError as exc:
            err.print(f"perfsage: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            failed = True
            continue
        graphs.append(featurize(model))
        names.append(str(path))
        notes[str(path)] = net.outside_training(graphs[-1], [op.name for op in
                                                             model.main.operators])
        for reason in notes[str(path)]:
            err.print(f"perfsage: warning: {path}: outside the training data ({reason}); "
                      "the prediction is an extrapolation", markup=False, highlight=False,
                      soft_wrap=True)
    predictions = net.predict(graphs) if graphs else {}
    rows = [{m: float(predictions[m][i]) for m in net.metrics} for i in range(len(names))]
    if as_json:
        print(json.dumps([{"model": n, "target": target, "predicted": r,
                           "outside_training": notes[n]}
                          for n, r in zip(names, rows, strict=True)], indent=1))
    elif rows:
        table = Table(title=f"PerfSAGE predictions for {target}", title_justify="left")
        table.add_column("model\n(file name)", no_wrap=True)
        for m in net.metrics:
            unit = metric_info[m].unit if m in metric_info else ""
            table.add_column(f"{m}\n({unit})" if unit else m, justify="right", no_wrap=True)
        for name, row in zip(names, rows, strict=True):
            table.add_row(Path(name).name, *(f"{row[m]:.4g}" for m in net.metrics))
        fmt.console().print(table)
    if failed:
        raise typer.Exit(2)
