"""`perfsage compress`: prune and cluster a model's int8 weights, and see what it saves.

Magnitude pruning and per-output-channel clustering of the weights of every convolution
and dense layer (:mod:`perfsage.udc.compress`): the same graph and quantisation, other
values, so the file runs wherever the original did. Prints the predicted costs before and
after on each target (where weights are decompressed in hardware, Ethos-U, flash, weight
traffic, latency and energy fall); ``--measure`` checks both with the real tool;
``--sweep`` prints a what-if table over sparsity and bits. What compressing costs in
accuracy is not estimated: that is the user's to judge, on their own data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perfsage.cli import format as fmt
from perfsage.cli.options import add_target, output_file
from perfsage.errors import UsageError

#: The what-if grid of ``--sweep``.
SWEEP_SPARSITY = (0.0, 0.25, 0.5, 0.75, 0.9)
SWEEP_BITS = (8, 6, 4, 3, 2)
#: Metrics shown in the sweep table, where the target has them.
SWEEP_METRICS = ("flash_kib", "latency_ms")
ACCURACY_NOTE = ("the accuracy a model loses by compressing is not estimated: it is yours "
                 "to judge, by evaluating the compressed model on your own data")


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage compress`."""
    parser.add_argument("model", type=Path, metavar="MODEL", help="an int8 .tflite file")
    parser.add_argument("--sparsity", type=float, default=0.0, metavar="S",
                        help="share of each layer's weights set to zero, smallest magnitudes "
                             "first (0 to 0.95; default 0)")
    parser.add_argument("--bits", type=int, default=8, metavar="B",
                        help="at most 2**B distinct values per output channel (1 to 8; "
                             "default 8: values as they are)")
    parser.add_argument("--structured", action="store_true",
                        help="prune whole output channels (smallest L2 norm) instead of "
                             "single weights")
    parser.add_argument("--per-layer", type=Path, metavar="FILE",
                        help="JSON object of exceptions: {LAYER: [sparsity, bits], ...}, a "
                             "layer named by operator index (`perfsage inspect`) or weight "
                             "tensor name")
    parser.add_argument("--out", "-o", type=output_file, metavar="FILE",
                        help="where to write the compressed .tflite (default: write nothing)")
    add_target(parser, "target to predict (repeat for several)")
    parser.add_argument("--measure", action="store_true",
                        help="also measure the model before and after with the target's "
                             "real tool (Vela, LiteRT, TFLite Micro)")
    parser.add_argument("--sweep", action="store_true",
                        help="print predicted costs over sparsity x bits "
                             f"({len(SWEEP_SPARSITY)} x {len(SWEEP_BITS)} compressions)")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")


def run(args: argparse.Namespace) -> int:
    """Compress, predict before and after, optionally measure, sweep and write."""
    from perfsage.graph.reader import mapped
    from perfsage.udc.compress import CompressionPlan, apply_plan, plan_from_file

    per_layer = _per_layer(args.per_layer, plan_from_file)
    plan = CompressionPlan.of(args.sparsity, args.bits, per_layer, args.structured)
    with mapped(args.model) as (contents, _):
        original = bytes(contents)
    compressed = apply_plan(original, plan, str(args.model))
    targets = list(dict.fromkeys(args.target))
    results = [_compare(target, original, compressed, args.measure) for target in targets]
    sweep = [_sweep(target, original, per_layer, args.structured) for target in targets] \
        if args.sweep else []
    if args.out is not None:
        args.out.write_bytes(compressed)
    if args.as_json:
        print(json.dumps({"model": str(args.model), "out": str(args.out) if args.out else None,
                          "compression": plan.as_json(), "results": results, "sweep": sweep,
                          "accuracy": ACCURACY_NOTE}, indent=1))
    else:
        _print(args, plan, results, sweep)
    return 0


def _per_layer(path: Path | None, parse) -> dict:
    """The per-layer exceptions of ``--per-layer``, or none."""
    if path is None:
        return {}
    if not path.is_file():
        raise UsageError(f"--per-layer: {path}: no such file")
    return parse(str(path), path.read_text())


def _compare(target: str, original: bytes, compressed: bytes, measure: bool) -> dict:
    """Predicted (and measured) figures of both models on one target.

    Measuring goes through the pipeline's pool, as ``perfsage predict`` does: a tool that
    fails or crashes on a model costs that model's figures (a note says why), not the run.
    """
    from perfsage.api import pipeline

    found = pipeline(target).predict([original, compressed], level=None)
    before, after = (dict(f.figures) for f in found)
    out = {"target": target, "predicted": {"before": before, "after": after},
           "notes": sorted({n.kind for n in found[1].notes})}
    if measure:
        pipeline(target).measure(found, [original, compressed])
        out["measured"] = {when: dict(f.figures) if f.source == "measured" else {}
                           for when, f in zip(("before", "after"), found, strict=True)}
        out["measure_failed"] = [n.message for f in found for n in f.notes
                                 if n.kind == "measure-failed"]
    return out


def _sweep(target: str, original: bytes, per_layer: dict, structured: bool) -> dict:
    """Predicted figures over the sparsity x bits grid, on one target."""
    from perfsage.api import pipeline
    from perfsage.udc.compress import compress

    grid = [(s, b) for s in SWEEP_SPARSITY for b in SWEEP_BITS]
    models = [compress(original, s, b, per_layer, structured=structured) for s, b in grid]
    found = pipeline(target).predict(models, level=None)
    return {"target": target, "rows": [{"sparsity": s, "bits": b, "predicted": f.figures}
                                       for (s, b), f in zip(grid, found, strict=True)]}


def _print(args: argparse.Namespace, plan, results: list[dict], sweep: list[dict]) -> None:
    from rich.table import Table

    out = fmt.console()
    what = f"sparsity {args.sparsity:g}{' (whole channels)' if args.structured else ''}, " \
           f"at most {2 ** args.bits} values per channel" + (
               f", per-layer exceptions from {args.per_layer}" if args.per_layer else "")
    for result in results:
        table = Table(title=f"{args.model.name} on {result['target']}: {what}",
                      title_justify="left")
        table.add_column("metric")
        sources = ["predicted", *(["measured"] if "measured" in result else [])]
        for source in sources:
            for when in ("before", "after"):
                table.add_column(f"{source}\n{when}", justify="right", no_wrap=True)
            table.add_column(f"{source}\nchange", justify="right", no_wrap=True)
        metrics = [m for m in result["predicted"]["before"]
                   if m in result["predicted"]["after"]]
        for m in metrics:
            unit = fmt.unit(m)
            cells = []
            for source in sources:
                b, a = result[source]["before"].get(m), result[source]["after"].get(m)
                cells += [_cell(b), _cell(a), _change(b, a)]
            table.add_row(f"{m} ({unit})" if unit else m, *cells)
        out.print(table)
        for message in result.get("measure_failed", []):
            fmt.warning(message)
        if "compressed-weights" not in result["notes"] and not plan.default.is_identity:
            fmt.warning(f"{result['target']}: the predicted figures do not move: this target "
                        "reads weights uncompressed, or the model's compressed layers hold "
                        "too few of its weights to matter")
    for found in sweep:
        _print_sweep(out, found)
    if args.out is not None:
        print(f"perfsage: wrote {args.out}", file=sys.stderr)
    print(f"perfsage: note: {ACCURACY_NOTE}", file=sys.stderr)


def _print_sweep(out, found: dict) -> None:
    from rich.table import Table

    rows = found["rows"]
    metrics = [m for m in SWEEP_METRICS if m in rows[0]["predicted"]]
    if not metrics:
        return
    table = Table(title=f"what if, on {found['target']} (predicted; rows: sparsity, "
                        "columns: bits per weight)", title_justify="left")
    table.add_column("sparsity")
    for b in SWEEP_BITS:
        table.add_column(f"{b} bits", justify="right", no_wrap=True)
    for s in SWEEP_SPARSITY:
        cells = []
        for b in SWEEP_BITS:
            row = next(r["predicted"] for r in rows if r["sparsity"] == s and r["bits"] == b)
            cells.append(" / ".join(f"{fmt.figure(row[m])}" for m in metrics))
        table.add_row(f"{s:g}", *cells)
    table.caption = " / ".join(f"{m} ({fmt.unit(m)})" for m in metrics)
    out.print(table)


def _cell(value: float | None) -> str:
    return "–" if value is None else fmt.figure(value)


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None or not before:
        return "–"
    return f"{(after / before - 1) * 100:+.1f} %"
