"""`perfsage compare`: every predictor trained on the same splits at several dataset sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

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


def compare(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder with labels for the target.",
                                            show_default=False)],
    target: Annotated[str, typer.Option("--target", "-t", help="Target whose labels to learn.")],
    predictor: Annotated[list[str] | None, typer.Option(
        help="Predictor to compare (repeatable; default: all).")] = None,
    sizes: Annotated[str, typer.Option(help="Training-set sizes, comma-separated.")]
    = "100,300,1000,3000,10000",
    out: Annotated[Path | None, typer.Option(
        help="Folder for results, table and plots; default DATASET/compare-TARGET.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the training-set draw.")] = 0,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", help="A predictor setting, PREDICTOR.NAME=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Train every predictor at each size; write a markdown table and learning curves."""
    from perfsage.cli.progress import Reporter
    from perfsage.eval import compare as run
    from perfsage.predictors.graphset import load_graphset
    from perfsage.predictors.registry import predictor_class, predictor_names
    from perfsage.targets.registry import target_class

    target_class(target)
    names = predictor or predictor_names()
    for name in names:
        predictor_class(name)
    try:
        wanted = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--sizes {sizes!r}: expected whole numbers separated by commas, "
                         "e.g. 100,1000") from None
    if not wanted or min(wanted) < 1:
        raise UsageError(f"--sizes {sizes!r}: sizes must be at least 1")
    params = parse_settings(setting or [], names)
    out = out or dataset / f"compare-{target}"
    with Reporter("features", "graphs") as progress:
        data = load_graphset(dataset, target, progress=progress.update)
    with Reporter("compare", "fits") as progress:
        results = run.compare(data, names, out, sizes=wanted, seed=seed, settings=params,
                              progress=progress.update)
    lines = run.markdown(results, target)
    (out / "compare.md").write_text("\n".join(lines))
    plots = run.learning_curves(results, out, target)
    if as_json:
        print(json.dumps(results, indent=1))
        return
    print("\n".join(lines))
    print(f"table: {out / 'compare.md'}; plots: {', '.join(str(p) for p in plots)}")
