"""`perfsage measure`: label models with the real tools (Vela, LiteRT, TFLite Micro).

Models are read and checked by PerfSAGE's own reader first, so a corrupt file ends in one
clean line; measuring then happens in worker processes (:class:`MeasurePool`), so a tool
that crashes or hangs on a model costs that model, not the command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from perfsage.cli import format as fmt
from perfsage.errors import UsageError


def _table(model: str, targets, results) -> Table:
    table = Table(title=model, title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("unit")
    for target in targets:
        table.add_column(target.name, justify="right")
    by_target = {r.target: r for r in results}
    names = list(dict.fromkeys(m for t in targets for m in t.metrics))
    for metric in names:
        unit = next(t.metrics[metric].unit for t in targets if metric in t.metrics)
        cells = []
        for target in targets:
            result = by_target.get(target.name)
            if result is None or not result.ok:
                cells.append(result.status if result else "-")
            else:
                cells.append(fmt.figure(result.metrics[metric]) if metric in result.metrics
                             else "-")
        table.add_row(metric, unit, *cells)
    return table


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage measure`."""
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL",
                        help="one or more .tflite files")
    parser.add_argument("-t", "--target", action="append", default=[], metavar="TARGET",
                        help="target to measure on (repeat for several); see "
                             "`perfsage targets`")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="seconds allowed per model and target (default 120)")


def run(args: argparse.Namespace) -> int:
    """Measure the models on every target in worker processes, with progress and limits."""
    from perfsage.cli.progress import Reporter
    from perfsage.convert import as_tflite
    from perfsage.graph import read_model
    from perfsage.targets import MeasurePool, get_target, target_names

    if not args.target:
        raise UsageError(f"give at least one --target; choose from: {', '.join(target_names())}")
    if args.workers < 1:
        raise UsageError(f"--workers: {args.workers} is less than 1")
    if not args.timeout > 0:
        raise UsageError(f"--timeout: {args.timeout} is not a positive number of seconds")
    targets = [get_target(name) for name in dict.fromkeys(args.target)]  # unknown: exit 2
    items = []
    for path in args.models:
        tflite = as_tflite(path)  # another format (ONNX, .pt2, Keras): its int8 conversion
        read_model(tflite)  # a missing or corrupt file: one line, exit 2
        items.append((str(path), tflite.read_bytes()))

    results: dict[str, list] = {key: [] for key, _ in items}
    total = len(items) * len(targets)
    with Reporter("measure", "measurements") as progress, \
            MeasurePool([t.name for t in targets], workers=args.workers,
                        timeout_s=args.timeout) as pool:
        for done, result in enumerate(pool.imap_unordered(items), 1):
            results[result.key].append(result)
            progress.update(done, total, f"{result.key} on {result.target}")

    failed = False
    for key, found in results.items():
        for r in found:
            if not r.ok:
                failed = True
                fmt.error(f"{key}: {r.target}: {r.status}: {r.message}")
    if args.as_json:
        print(json.dumps({
            "targets": {t.name: {"settings_hash": t.settings_hash, "units": {
                m: spec.unit for m, spec in t.metrics.items()}} for t in targets},
            "results": [
                {"model": r.key, "target": r.target, "status": r.status, "metrics": r.metrics,
                 "message": r.message, "wall_s": r.wall_s}
                for key in results for r in sorted(results[key], key=lambda r: r.target)
            ],
        }, indent=1, allow_nan=False))
    else:
        out = fmt.console()
        for key, found in results.items():
            out.print(_table(key, targets, found))
    return 2 if failed else 0
