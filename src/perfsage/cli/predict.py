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
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Also show where time and memory go, block by block (block "
                            "predictor).")] = False,
    block_weights: Annotated[Path | None, typer.Option(
        help="Block-predictor folder for --per-layer (default: the shipped one).")] = None,
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
    blocks = None
    if per_layer:
        from perfsage.predictors.block.layers import load_block_predictor
        from perfsage.predictors.block.layers import per_layer as breakdown

        blocks = load_block_predictor(target, str(block_weights) if block_weights else None)
    graphs, names, failed, notes, layers = [], [], False, {}, {}
    err = fmt.console(stderr=True)
    for path in models:
        try:
            model = read_model(path, details=per_layer)  # names label the layers
        except PerfSageError as exc:
            err.print(f"perfsage: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            failed = True
            continue
        graphs.append(featurize(model))
        names.append(str(path))
        if blocks is not None:
            layers[str(path)] = breakdown(model, blocks, graphs[-1])
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
                          | ({"per_layer": layers[n]} if n in layers else {})
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
        for name in names:
            if name in layers:
                fmt.console().print(_layer_table(Path(name).name, layers[name], metric_info))
    if failed:
        raise typer.Exit(2)


def _layer_table(name: str, breakdown: dict, metric_info: dict):
    """One model's blocks: operators, predicted cost per metric, share of additive ones."""
    from rich import box
    from rich.table import Table

    metrics, peak = breakdown["metrics"], breakdown["peak"]
    totals = ", ".join(f"{m} {breakdown['total'][m]:.4g}" for m in metrics)
    peaks = ", ".join(m for m in metrics if peak[m])
    note = f"; {peaks}: each block's own peak, the network's is the largest" if peaks else ""
    table = Table(title=f"{name}, per block (block predictor; totals: {totals}{note})",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # The share column follows the first additive metric (latency, or flash on a CPU).
    shared = next((m for m in metrics if not peak[m]), None)
    table.add_column("#", justify="right", min_width=2)
    table.add_column("operators\n(types)", no_wrap=True, max_width=23)
    table.add_column("output\n(tensor)", no_wrap=True, max_width=20)
    for m in metrics:
        unit = metric_info[m].unit if m in metric_info else ""
        label = f"{m}\n({unit})" if unit else m
        table.add_column(label, justify="right", no_wrap=True, min_width=len(m))
        if m == shared:
            table.add_column("%", justify="right", no_wrap=True, min_width=4)
    for row in breakdown["rows"]:
        block = bool(row["types"])  # else the per-network overhead row
        cells = [str(row["block"]) if block else "",
                 "+".join(row["types"]) if block else "(per network)",
                 row["operators"][-1] if block else ""]
        for m in metrics:
            cells.append(f"{row[m]:.3g}")
            if m == shared:
                cells.append(f"{row['share'].get(m, 0.0):.1f}")
        table.add_row(*cells)
    return table
