"""`perfsage predict`: latency, energy and memory of models on targets, without running a tool.

Runs the shipped (or a trained) PerfSAGE network with NumPy through the one prediction
pipeline (:mod:`perfsage.pipeline`), as the Python API does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perfsage.cli import format as fmt
from perfsage.cli.options import at_least
from perfsage.errors import PerfSageError, UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage predict`."""
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL",
                        help="one or more .tflite files")
    parser.add_argument("-t", "--target", action="append", metavar="TARGET",
                        help="hardware target (repeat for several); see `perfsage targets`; "
                             "may be left out with --weights, whose folder names its target")
    parser.add_argument("--weights", type=Path, metavar="DIR",
                        help="weights folder from `perfsage train` or `perfsage adapt` "
                             "(default: the shipped weights; one target only)")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")
    parser.add_argument("--per-layer", action="store_true",
                        help="also show where latency and energy go, operator by operator "
                             "(the same network's split of its totals)")
    from perfsage.predictors.intervals import DEFAULT_LEVEL

    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, metavar="P",
                        help="share of true values each interval should cover (default "
                             f"{DEFAULT_LEVEL})")
    parser.add_argument("--measure-if-unsure", type=float, metavar="W",
                        help="measure with the real tool every model whose latency interval "
                             "is wider than W relative to the prediction (0.1: wider than "
                             "10 %%)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="seconds the real tool may take per model (default 120)")
    parser.add_argument("--workers", type=at_least(1), default=1,
                        help="processes measuring at once (default 1)")
    parser.add_argument("--quantize", action="store_true",
                        help="predict a float32 .tflite's int8 version (what the NPU would "
                             "run), made with the official quantiser (perfsage[convert])")
    parser.add_argument("--calibration", type=Path, metavar="DATA",
                        help="calibration samples (.npy/.npz) for converting or quantising a "
                             "model; default: random inputs")
    parser.add_argument("--top", type=int, default=15, metavar="N",
                        help="operators shown per model with --per-layer, costliest first "
                             "(default 15; 0 for all; --json always has all)")


def run(args: argparse.Namespace) -> int:
    """Predict each model on each target; a bad model file is one line, the rest go on."""
    from perfsage.api import pipeline, predictions
    from perfsage.convert import as_tflite

    if not args.target and args.weights is None:
        from perfsage.predictors.shipped import shipped_targets

        raise UsageError("-t/--target: give a target (with shipped weights: "
                         f"{', '.join(shipped_targets())}) or a weights folder with --weights")
    # None: the target the weights folder names (``perfsage adapt --name`` gives any name)
    targets = list(dict.fromkeys(args.target)) if args.target else [None]
    if args.weights is not None and len(targets) > 1:
        raise UsageError("--weights: a weights folder is for one target; give one -t")
    if args.top < 0:
        raise UsageError(f"--top: {args.top} is negative; give 0 (all) or more")
    if not 0.5 <= args.level <= 0.99:
        raise UsageError(f"--level: {args.level} is outside 0.5 to 0.99")
    if not args.timeout > 0:
        raise UsageError(f"--timeout: {args.timeout} is not a positive number of seconds")
    pipes = [pipeline(t, args.weights) for t in targets]  # a bad target or weights: exit 2
    results, failed = [], False
    good, given, read = [], [], []  # the models to predict, each as the user named it, read
    for original in args.models:  # a bad file is one line; the others are predicted
        try:
            # another format (ONNX, .pt2, Keras), or a float model with --quantize: int8
            path = as_tflite(original, calibration=args.calibration, quantize=args.quantize)
            checked = pipes[0].read(path)
        except PerfSageError as exc:
            fmt.error(str(exc))
            failed = True
            continue
        good.append(path)
        given.append(str(original))
        read.append(checked)
    for target, pipe in zip(targets, pipes, strict=True):
        found = predictions(good, target, weights=args.weights, level=args.level,
                            measure_if_unsure=args.measure_if_unsure, timeout_s=args.timeout,
                            workers=args.workers,
                            read=read if pipe is pipes[0] else None) if good else []
        for prediction, name in zip(found, given, strict=True):
            prediction.model = name  # a converted model is named as the user gave it
        layers = [_layers(pipe, path) if args.per_layer else None for path in good]
        results += list(zip(found, layers, strict=True))
    if args.measure_if_unsure is not None:
        _measured_summary([r for r, _ in results])
    if args.as_json:
        print(json.dumps([r.as_dict() | ({"per_layer": layer} if layer else {})
                          for r, layer in results], indent=1, allow_nan=False))
    else:
        for prediction, _ in results:
            for note in prediction.notes:
                fmt.warning(f"{prediction.model}: {prediction.target}: {note.message}")
        _print_tables(pipes, results, args.top)
    return 2 if failed else 0


def _measured_summary(found) -> None:
    """How many models were measured, the time it took, and what measuring all would take."""
    measured = [r for r in found if r.source == "measured"]
    spent = sum(r.measure_s or 0.0 for r in measured)
    line = f"measured {len(measured)} of {len(found)} predictions with the real tool"
    if measured:
        all_s = spent / len(measured) * len(found)
        line += f" in {spent:.1f} s (measuring all would take about {all_s:.0f} s)"
    print(f"perfsage: {line}", file=sys.stderr)


def _layers(pipe, path: Path) -> dict:
    model, graph = pipe.read(path, details=True)
    return pipe.per_operator(model, graph)


def _print_tables(pipes, results, top: int) -> None:
    from rich.table import Table

    out = fmt.console()
    for pipe in pipes:
        rows = [(r, layer) for r, layer in results if r.target == pipe.target]
        if not rows:
            continue
        table = Table(title=f"PerfSAGE predictions for {pipe.target}", title_justify="left")
        longest = max(len(r.model) + 11 for r, _ in rows)
        table.add_column("model", overflow="fold", min_width=min(longest, 44))
        for m in pipe.metrics:
            unit = fmt.unit(m)
            table.add_column(f"{m}\n({unit})" if unit else m, justify="right", no_wrap=True)
        level = next((r.level for r, _ in rows
                      if r.level and set(r.exact) < set(pipe.metrics)), None)
        if level:
            table.caption = (f"value ±half the {level:.0%} interval, in % of the value; "
                             "'measured' rows hold the real tool's figures")
        for r, _ in rows:
            kinds = {n.kind for n in r.notes}
            absent = "(rejected)" if "vela-rejects" in kinds else "(CPU)"
            table.add_row(r.model + (" (measured)" if r.source == "measured" else ""),
                          *(_cell(r, m) if m in r.figures else absent for m in pipe.metrics))
        out.print(table)
        for r, layer in rows:
            if layer:
                out.print(_layer_table(r.model, layer, top))


def _cell(found, metric: str) -> str:
    """A figure, with ± half its interval when predicted and not exact."""
    value = fmt.figure(found.figures[metric])
    if found.source == "measured" or not found.interval or metric in found.exact:
        return value
    lo, hi = found.interval.get(metric, (None, None))
    if lo is None or not found.figures[metric]:
        return value
    return f"{value} ±{50 * (hi - lo) / found.figures[metric]:.0f}%"


def _layer_table(name: str, split: dict, top: int):
    """A model's operators, costliest first, with the per-network overhead and the totals."""
    from rich import box
    from rich.table import Table

    metrics = split["metrics"]
    lead = metrics[0]
    rows = sorted(split["rows"], key=lambda r: -r[lead])
    shown = rows if top == 0 else rows[:top]
    table = Table(title=f"{name}: per operator (the same network's split of its totals; "
                        f"sorted by {lead})", title_justify="left", box=box.SIMPLE_HEAD,
                  show_footer=True)
    table.add_column("#", justify="right", footer="")
    table.add_column("op", no_wrap=True, footer="total")
    table.add_column("output shape", overflow="fold", footer="")
    table.add_column("MACs", justify="right", no_wrap=True,
                     footer=fmt.count(sum(r["macs"] for r in rows)))
    for m in metrics:
        unit = fmt.unit(m)
        table.add_column(f"{m}\n({unit})" if unit else m, justify="right", no_wrap=True,
                         footer=fmt.figure(split["total"][m]))
        if m == lead:
            table.add_column("%", justify="right", no_wrap=True, footer="100.0")
    total = split["total"][lead] or 1.0

    def cells(values: dict) -> list[str]:
        out = []
        for m in metrics:
            out.append(fmt.figure(values[m]))
            if m == lead:
                out.append(f"{100 * values[m] / total:.1f}")
        return out

    for r in shown:
        shape = ", ".join(fmt.shape(tuple(s)) for s in r["output_shape"])
        table.add_row(str(r["index"]), r["op"], shape,
                      fmt.count(r["macs"]) if r["macs"] else "-", *cells(r))
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        table.add_row("", f"({len(rest)} more)", "", fmt.count(sum(r["macs"] for r in rest)),
                      *cells({m: sum(r[m] for r in rest) for m in metrics}))
    table.add_row("", "(per network)", "", "", *cells(split["overhead"]))
    return table
