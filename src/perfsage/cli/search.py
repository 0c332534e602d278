"""`perfsage search`: the best models of a search space that meet hardware budgets.

Regularised evolution over the space's architecture and each weighted layer's sparsity and
bit-width, with the predictor (and its intervals) as the cost model; the best candidates
are then measured with the target's real tool and kept only if they hold every budget.
Everything happens in :func:`perfsage.api.search`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import os
import sys

from perfsage.cli import format as fmt
from perfsage.cli.options import add_target, at_least, folder, one_target


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage search`."""
    from perfsage.predictors.intervals import DEFAULT_LEVEL

    parser.add_argument("--space", required=True, metavar="SPACE",
                        help="search space, e.g. keyword-spotting (see `perfsage dataset "
                             "generate --help`)")
    add_target(parser, "target whose budgets the models must meet")
    parser.add_argument("--budget", action="append", required=True, metavar="METRIC=VALUE",
                        help="most a metric may reach, in the unit its name ends with "
                             "(latency_ms=0.3, sram_kib=64, flash_kib=120, energy_mj=..., "
                             "arena_kib=...); repeat for several")
    parser.add_argument("--count", type=at_least(1), default=3, metavar="N",
                        help="candidates to return (default 3)")
    parser.add_argument("--out", type=folder, required=True, metavar="DIR",
                        help="folder for candidate_N.tflite, results.json/.csv, "
                             "evaluated.csv and pareto.png (created if missing)")
    parser.add_argument("--objective", default=None, metavar="NAME|MODULE:FUNCTION",
                        help="what to maximise within the budgets: params (default; "
                             "effective int8 weights) or macs, both proxies for accuracy, or "
                             "your own function of a candidate (module:function, importable "
                             "from the current folder)")
    parser.add_argument("--generations", type=at_least(0), default=30, metavar="G",
                        help="generations after the first population (default 30)")
    parser.add_argument("--population", type=at_least(2), default=64, metavar="P",
                        help="population size and children per generation (default 64)")
    parser.add_argument("--seed", type=at_least(0), default=0, metavar="K",
                        help="random seed (default 0)")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, metavar="P",
                        help="coverage of the intervals whose upper end must meet each budget "
                             f"(0.5 to 0.99, default {DEFAULT_LEVEL})")
    parser.add_argument("--no-compress", dest="compress", action="store_false",
                        help="search the architecture only, every layer dense")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="do not measure the final candidates with the real tool")
    parser.add_argument("--weights", default=None, metavar="DIR",
                        help="a weights folder from `perfsage train` instead of the shipped "
                             "ones")
    parser.add_argument("--workers", type=at_least(1), default=1, metavar="N",
                        help="processes building candidate models, most of the search's time "
                             "(default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="seconds the real tool may take per model (default 120)")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print results.json to stdout instead of a table")


def run(args: argparse.Namespace) -> int:
    """Search, verify, write the files, print the candidates; 1 when fewer than asked."""
    from perfsage.api import search
    from perfsage.cli.progress import Reporter

    if args.objective and ":" in args.objective and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `module:function` from the current folder
    with Reporter("search", "candidates") as progress:
        result = search(args.space, one_target(args), args.budget, count=args.count,
                        objective=args.objective, generations=args.generations,
                        population=args.population, seed=args.seed, level=args.level,
                        compress=args.compress,
                        verify=args.verify, out=args.out, weights=args.weights,
                        timeout_s=args.timeout, workers=args.workers,
                        progress=progress.update)
    if args.as_json:
        print((args.out / "results.json").read_text(), end="")
    else:
        _print(result, args)
    if not result.complete:
        fmt.warning(f"found {len(result.candidates)} of the {args.count} candidates asked for;"
                    " try more --generations, a larger --population or looser budgets")
        return 1
    return 0


def _print(result, args: argparse.Namespace) -> None:
    from rich.markup import escape
    from rich.table import Table

    from perfsage.udc.objectives import PROXY_WARNING

    out = fmt.console()
    timing = result.timing.as_dict()
    within = sum(c.within_budget for c in result.evaluated)
    level = result.settings.level
    out.print(f"{result.space} on {result.target}: {len(result.evaluated):,} candidates in "
              f"{timing['search_s']:.1f} s ({timing['candidates_per_s']:.0f} candidates/s; "
              f"prediction alone {timing['predictions_per_s']:.0f}/s, building "
              f"{timing['builds_per_s']:.0f}/s); {within:,} within every budget"
              + (f" by their {level:.0%} intervals" if level else ""), highlight=False)
    objective = result.objective
    out.print(f"objective: {objective.name}: {objective.description}"
              + (f" — {PROXY_WARNING}" if objective.proxy else ""), highlight=False)
    if result.tool:
        out.print(f"verified with {result.tool}: {len(result.candidates)} kept, "
                  f"{len(result.dropped)} dropped", highlight=False)
    else:
        out.print("not verified: the figures are predicted", highlight=False)
    table = Table(title_justify="left")
    for name in ("rank", "file", "objective", "MACs", "weights", "sparsity", "bits"):
        table.add_column(name, justify="right" if name != "file" else "left")
    for b in result.budgets:
        table.add_column(escape(f"{b.metric}\npred [hi] → meas / {b.limit:g}"),
                         justify="right")
    rows = [(str(i), f"candidate_{i}.tflite", c) for i, c in enumerate(result.candidates, 1)]
    rows += [("-", escape(f"dropped: {c.reason}"), c) for c in result.dropped]
    for rank, file, c in rows:
        cells = [rank, file, fmt.count(c.objective or 0), fmt.count(c.arch.macs),
                 fmt.count(c.arch.params), f"{c.sparsity:.0%}", str(c.min_bits)]
        for b in result.budgets:
            hi = c.bound.get(b.metric)
            measured = (c.measured or {}).get(b.metric)
            cells.append(escape(f"{fmt.figure(c.predicted.get(b.metric, float('nan')))} "
                                f"[{fmt.figure(hi) if hi is not None else '-'}] → "
                                f"{fmt.figure(measured) if measured is not None else '-'}"))
        table.add_row(*cells)
    out.print(table)
    for note in result.notes:
        fmt.warning(note)
    n = len(result.candidates)
    models = "" if not n else "candidate_1.tflite, " if n == 1 else \
        f"candidate_1..{n}.tflite, "
    out.print(f"wrote {args.out}/: {models}results.json, results.csv, evaluated.csv, "
              "pareto.png", highlight=False)

