"""``perfsage measure`` and ``perfsage targets``: label models with the real tools.

Models are read and checked by PerfSAGE's own reader first, so a corrupt file ends in one
clean line; measuring then happens in worker processes (:class:`MeasurePool`), so a tool
that crashes or hangs on a model costs that model, not the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from perfsage.cli import format as fmt
from perfsage.errors import UsageError

_TARGET_HELP = "Target to measure on (repeat for several); see `perfsage targets`."


def _value(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}"
    return f"{value:.4g}"


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
                cells.append(_value(result.metrics[metric]) if metric in result.metrics else "-")
        table.add_row(metric, unit, *cells)
    return table


def measure(
    models: Annotated[list[Path], typer.Argument(help="One or more .tflite files.",
                                                 show_default=False)],
    target: Annotated[list[str], typer.Option("--target", "-t", help=_TARGET_HELP,
                                              show_default=False)] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per model and target.",
                                           min=0.001)] = 120.0,
) -> None:
    """Measure TFLite models on hardware targets: latency, memory and energy per target."""
    from perfsage.graph import read_model
    from perfsage.targets import MeasurePool, get_target, target_names

    if not target:
        raise UsageError(f"give at least one --target; choose from: {', '.join(target_names())}")
    targets = [get_target(name) for name in dict.fromkeys(target)]  # unknown name: exit 2
    items = []
    for path in models:
        read_model(path)  # a missing or corrupt file: one line, exit 2
        items.append((str(path), path.read_bytes()))

    results: dict[str, list] = {key: [] for key, _ in items}
    with MeasurePool([t.name for t in targets], workers=workers, timeout_s=timeout) as pool:
        for result in pool.imap_unordered(items):
            results[result.key].append(result)

    err = fmt.console(stderr=True)
    failed = False
    for key, found in results.items():
        for r in found:
            if not r.ok:
                failed = True
                err.print(f"perfsage: error: {key}: {r.target}: {r.status}: {r.message}",
                          markup=False, highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps({
            "targets": {t.name: {"settings_hash": t.settings_hash, "units": {
                m: spec.unit for m, spec in t.metrics.items()}} for t in targets},
            "results": [
                {"model": r.key, "target": r.target, "status": r.status, "metrics": r.metrics,
                 "message": r.message, "wall_s": r.wall_s}
                for key in results for r in sorted(results[key], key=lambda r: r.target)
            ],
        }, indent=1))
    else:
        out = fmt.console()
        for key, found in results.items():
            out.print(_table(key, targets, found))
    if failed:
        raise typer.Exit(2)


def targets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """List hardware targets: their metrics with units, and the settings behind them."""
    from perfsage.predictors.shipped import shipped_targets
    from perfsage.targets import get_target, target_names

    listed = [get_target(name) for name in target_names()]
    shipped = set(shipped_targets())
    if as_json:
        print(json.dumps({t.name: {
            "weights_shipped": t.name in shipped,
            "metrics": {m: {"unit": s.unit, "description": s.description}
                        for m, s in t.metrics.items()},
            "settings": t.settings, "settings_hash": t.settings_hash,
            "measured_on_host": t.measured_on_host, "per_layer": t.per_layer,
        } for t in listed}, indent=1))
        return
    out = fmt.console()
    for t in listed:
        table = Table(title=f"{t.name}  (settings {t.settings_hash[:12]})", title_justify="left")
        table.add_column("metric", no_wrap=True)
        table.add_column("unit")
        table.add_column("meaning")
        for metric, spec in t.metrics.items():
            table.add_row(metric, spec.unit, spec.description)
        out.print(table)
        weights = ("PerfSAGE weights ship for this target" if t.name in shipped
                   else "no PerfSAGE weights ship (train with `perfsage train`)")
        out.print(weights, markup=False, highlight=False)
        settings = json.dumps({k: v for k, v in t.settings.items() if k != "target"})
        out.print(f"settings: {settings}", markup=False, highlight=False, soft_wrap=True)
        out.print()
