"""`perfsage adapt`: fit PerfSAGE to your own board from a CSV of measured models.

    perfsage adapt measurements.csv --base ethos-u55-128 --name my-board --out my-board/
    perfsage predict model.tflite --weights my-board/

The CSV has a ``model`` column (paths, relative to the CSV or absolute, in any format
``perfsage predict`` reads) and one column per metric named with its unit (``latency_ms``,
``energy_mj``, ``arena_kib``...). Which part of the network to refit, and how hard, is
chosen by cross-validation on your rows (``perfsage.predictors.adapt``). Running the same
command again resumes from the checkpoint in the output folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perfsage.cli.options import at_least, folder
from perfsage.predictors.adapt import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage adapt`."""
    parser.add_argument("csv", type=Path, metavar="MEASUREMENTS.csv",
                        help="a 'model' column of model paths and one column per metric "
                             "(latency_ms, energy_mj, arena_kib, ...)")
    parser.add_argument("--base", required=True, metavar="TARGET|DIR|none",
                        help="start from the shipped weights of TARGET (see `perfsage "
                             "targets`), from a weights folder, or 'none' for a network fitted "
                             "from nothing")
    parser.add_argument("--out", type=folder, required=True, metavar="DIR",
                        help="weights folder to write (also holds the checkpoint)")
    parser.add_argument("--name", metavar="TARGET",
                        help="the target name the weights carry (default: the CSV's file "
                             "name, e.g. my-board for my-board.csv)")
    parser.add_argument("--folds", type=at_least(2), default=5,
                        help="cross-validation folds over the CSV's models (5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds (0)")
    parser.add_argument("--ridges", type=_numbers(float), default=Settings.ridges,
                        metavar="W,W,...",
                        help="ridge weights to try, pulling refitted weights toward the base's "
                             f"({_joined(Settings.ridges)})")
    parser.add_argument("--steps", type=_numbers(int), default=Settings.steps,
                        metavar="N,N,...",
                        help="Adam step counts to try: where to stop, chosen by "
                             f"cross-validation ({_joined(Settings.steps)})")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print the report as JSON for machines")


def run(args: argparse.Namespace) -> int:
    """Adapt, with progress; print what cross-validation chose per metric."""
    from perfsage.cli.progress import Reporter
    from perfsage.predictors.adapt import adapt

    name = args.name or args.csv.stem
    with Reporter("adapt", "fits") as progress:
        report = adapt(args.csv, args.out, base=args.base, name=name,
                       settings=Settings(folds=args.folds, seed=args.seed,
                                         ridges=args.ridges, steps=args.steps),
                       progress=progress.update)
    if args.as_json:
        print(json.dumps(report.as_dict(), indent=1, allow_nan=False))
        return 0
    _print(report)
    return 0


#: How the starts of ``predictors.adapt.STARTS`` read in the summary.
START_NAMES = {"base": "the base network, refitted", "types": "from nothing, per operator type",
               "random": "from nothing, random operator features"}


def _joined(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _numbers(kind: type):
    """An argparse type: comma-separated numbers of ``kind``, as a tuple."""
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                             f"{kind.__name__} numbers") from None

    parse.__name__ = f"comma-separated {kind.__name__} numbers"
    return parse


def _print(report) -> None:
    from rich.table import Table

    from perfsage.cli import format as fmt

    kept = START_NAMES.get(report.start, report.start)
    table = Table(title=f"{report.name}: {report.models} models, {report.folds}-fold "
                        f"cross-validation; kept: {kept}", title_justify="left")
    for column in ("metric", "chosen", "error", "cross-validated", "before", "on all rows"):
        table.add_column(column, justify="left" if column in ("metric", "chosen") else "right")

    def cell(value) -> str:
        return "-" if value is None else f"{value:.1f}"

    for c in report.choices:
        table.add_row(c.metric, c.candidate.label(), c.error_name, cell(c.cv_error),
                      cell(c.base_error), cell(c.fit_error))
    table.caption = ("cross-validated: each model predicted by a fit that never saw it; "
                     "before: the base network's figure; on all rows: the final fit, in-sample")
    fmt.console().print(table)
    for start, errors in report.starts.items():
        shown = ", ".join(f"{m} {e:.1f}" for m, e in errors.items())
        mark = "kept" if start == report.start else "    "
        print(f"  {mark} {START_NAMES.get(start, start)}: cross-validated {shown}")
    print(f"weights in {report.out}; predict with `perfsage predict MODEL --weights "
          f"{report.out}`")
