"""`perfsage inspect`: what is inside a TFLite model, layer by layer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from perfsage.cli import format as fmt
from perfsage.convert import as_tflite
from perfsage.errors import PerfSageError
from perfsage.graph import Model, ModelCost, Tensor, analyze, read_model


def _tensor_info(t: Tensor) -> dict:
    q = t.quantization
    return {
        "name": t.name, "shape": list(t.shape), "dtype": t.dtype,
        "shape_signature": list(t.shape_signature) if t.shape_signature else None,
        "scale": list(q.scale) if q else None, "zero_point": list(q.zero_point) if q else None,
    }


def report(model: Model, cost: ModelCost) -> dict:
    """Everything ``inspect --json`` prints for one model."""
    return {
        **cost.as_dict(),
        "inputs": [_tensor_info(t) for t in model.inputs],
        "outputs": [_tensor_info(t) for t in model.outputs],
    }


def _table(model: Model, cost: ModelCost) -> Table:
    table = Table(title=f"{model.source}", title_justify="left", show_footer=True)
    table.add_column("#", justify="right", footer="")
    table.add_column("op", footer=f"total ({len(cost.layers)} ops)", no_wrap=True)
    table.add_column("act", footer="")
    table.add_column("output shape", footer="", no_wrap=True)
    table.add_column("MACs", justify="right", footer=fmt.count(cost.macs))
    table.add_column("params", justify="right", footer=fmt.count(cost.params))
    table.add_column("param bytes", justify="right", footer=fmt.size(cost.param_bytes))
    table.add_column("in bytes", justify="right", footer="")
    table.add_column("out bytes", justify="right", footer="")
    for layer in cost.layers:
        table.add_row(
            str(layer.index), layer.op, layer.activation or "",
            ", ".join(fmt.shape(s) for s in layer.output_shapes),
            fmt.count(layer.macs) if layer.macs else "-",
            fmt.count(layer.params) if layer.params else "-",
            fmt.size(layer.param_bytes) if layer.param_bytes else "-",
            fmt.size(layer.input_bytes), fmt.size(layer.output_bytes),
        )
    return table


def _summary(model: Model, cost: ModelCost) -> str:
    io = "; ".join(
        f"{kind} {t.name or t.index} {fmt.shape(t.shape_signature or t.shape)} {t.dtype}"
        for kind, tensors in (("in", model.inputs), ("out", model.outputs)) for t in tensors
    )
    return (
        f"{fmt.count(cost.macs)} MACs, {fmt.count(cost.params)} params "
        f"({fmt.size(cost.param_bytes)}), peak activations {fmt.size(cost.peak_activation_bytes)}, "
        f"file {fmt.size(cost.model_bytes)}, {cost.subgraphs} subgraph(s)\n{io}"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage inspect`."""
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL",
                        help="one or more .tflite files")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")


def run(args: argparse.Namespace) -> int:
    """Show every layer of the models: op, output shape, MACs, params and bytes."""
    out = fmt.console()
    reports, failed = [], False
    for path in args.models:
        try:
            model = read_model(as_tflite(path))  # another format: its int8 conversion
            cost = analyze(model)
        except PerfSageError as exc:
            fmt.error(str(exc))
            failed = True
            continue
        if args.as_json:
            reports.append(report(model, cost))
        else:
            out.print(_table(model, cost))
            out.print(_summary(model, cost), markup=False, highlight=False)
            out.print()
    if args.as_json:
        print(json.dumps(reports, indent=1, allow_nan=False))
    return 2 if failed else 0
