"""`perfsage targets`: the hardware targets, their metrics with units, and their settings."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage targets`."""
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")


def run(args: argparse.Namespace) -> int:
    """List hardware targets: their metrics with units, and the settings behind them."""
    from rich.table import Table

    from perfsage.cli import format as fmt
    from perfsage.predictors.shipped import shipped_targets
    from perfsage.targets import get_target, target_names

    listed = [get_target(name) for name in target_names()]
    shipped = set(shipped_targets())
    if args.as_json:
        print(json.dumps({t.name: {
            "weights_shipped": t.name in shipped,
            "metrics": {m: {"unit": s.unit, "description": s.description}
                        for m, s in t.metrics.items()},
            "settings": t.settings, "settings_hash": t.settings_hash,
            "measured_on_host": t.measured_on_host, "per_layer": t.per_layer,
        } for t in listed}, indent=1))
        return 0
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
    return 0
