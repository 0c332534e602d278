"""`perfsage compare`: every predictor trained on the same splits at several dataset sizes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from perfsage.cli import format as fmt
from perfsage.cli.options import add_target, folder, one_target
from perfsage.errors import UsageError


def parse_settings(items: list[str], predictors: list[str]) -> dict[str, dict[str, Any]]:
    """``["perfsage-gnn.epochs=30"]`` -> ``{"perfsage-gnn": {"epochs": 30}}`` (JSON values)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, dot, rest = item.partition(".")
        key, eq, value = rest.partition("=")
        if not dot or not eq or not key:
            raise UsageError(f"--set {item!r}: expected PREDICTOR.SETTING=VALUE, "
                             "e.g. perfsage-gnn.epochs=30")
        if name not in predictors:
            raise UsageError(f"--set {item!r}: {name!r} is not among the compared predictors "
                             f"({', '.join(predictors)})")
        try:
            out.setdefault(name, {})[key] = json.loads(value)
        except json.JSONDecodeError:
            out.setdefault(name, {})[key] = value
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage compare`."""
    parser.add_argument("dataset", type=Path, metavar="DATASET",
                        help="dataset folder with labels for the target")
    add_target(parser, "target whose labels to learn")
    parser.add_argument("--predictor", action="append", metavar="NAME",
                        help="predictor to compare (repeatable; default: all)")
    parser.add_argument("--sizes", default="100,300,1000,3000,10000",
                        help="training-set sizes, comma-separated (100,300,1000,3000,10000)")
    parser.add_argument("--out", type=folder, metavar="DIR",
                        help="folder for results, table and plots; default "
                             "DATASET/compare-TARGET")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training-set draw (0)")
    parser.add_argument("--set", dest="setting", action="append", metavar="PREDICTOR.NAME=VALUE",
                        help="a predictor setting (repeatable)")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for machines")


def run(args: argparse.Namespace) -> int:
    """Train every predictor at each size; write a markdown table and learning curves."""
    from perfsage.cli.progress import Reporter
    from perfsage.eval import compare as runner
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.registry import predictor_class, predictor_names
    from perfsage.targets.registry import target_class

    target = one_target(args)
    target_class(target)
    names = args.predictor or predictor_names()
    for name in names:
        predictor_class(name)
    try:
        wanted = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--sizes {args.sizes!r}: expected whole numbers separated by commas, "
                         "e.g. 100,1000") from None
    if not wanted or min(wanted) < 1:
        raise UsageError(f"--sizes {args.sizes!r}: sizes must be at least 1")
    params = parse_settings(args.setting or [], names)
    out = args.out or args.dataset / f"compare-{target}"
    with Reporter("features", "graphs") as progress:
        data = load_graphset(args.dataset, target, progress=progress.update)
    available = len(split_sets(data)["train"])
    used = runner.training_sizes(wanted, available)
    if used != sorted(set(wanted)):
        fmt.warning(f"--sizes {args.sizes}: the train split has {available} models, so the "
                    f"sizes run are {','.join(map(str, used))}")
    with Reporter("compare", "fits") as progress:
        results = runner.compare(data, names, out, sizes=wanted, seed=args.seed,
                                 settings=params, progress=progress.update)
    lines = runner.markdown(results, target)
    (out / "compare.md").write_text("\n".join(lines))
    plots = runner.learning_curves(results, out, target)
    if args.as_json:
        print(json.dumps(results, indent=1))
        return 0
    print("\n".join(lines))
    print(f"table: {out / 'compare.md'}; plots: {', '.join(str(p) for p in plots)}")
    return 0
