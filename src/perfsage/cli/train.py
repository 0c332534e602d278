"""`perfsage train` and `perfsage evaluate`: fit the PerfSAGE GNN and measure its accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from perfsage.cli import format as fmt

Dataset = Annotated[Path, typer.Argument(help="Dataset folder (perfsage dataset generate).",
                                         show_default=False)]


def train(
    dataset: Dataset,
    target: Annotated[str, typer.Option("--target", "-t", help="Target whose labels to learn.")],
    out: Annotated[Path, typer.Option(help="Folder for weights, config and checkpoints.")],
    holdout_space: Annotated[str | None, typer.Option(
        help="Leave this search space out of training (it becomes the test split).")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs.")] = 80,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without "
                                                      "a better validation MAPE.")] = 12,
    hidden: Annotated[int, typer.Option(min=8, help="Hidden width.")] = 128,
    layers: Annotated[int, typer.Option(min=1, help="Message-passing rounds.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    readout: Annotated[str, typer.Option(
        help="additive: latency, energy and flash as a sum of per-operator costs plus an "
             "overhead; pool: one MLP over pooled node states.")] = "additive",
    peak: Annotated[bool, typer.Option(
        help="Peak memory (SRAM, arena) as the largest per-operator peak, each operator "
             "starting from the activation bytes live while it runs.")] = True,
    type_dropout: Annotated[float, typer.Option(
        min=0.0, max=0.95, help="Share of operator types hidden as 'unknown' per training "
                                "step, so types never trained on are predicted from their "
                                "shapes.")] = 0.1,
    rates: Annotated[bool, typer.Option(
        help="With --readout additive: each operator's cost as rates per MAC, per byte and "
             "per operator times those quantities.")] = True,
    align: Annotated[bool, typer.Option(
        help="Give each operator how far its channel counts are from multiples of 8, 16 "
             "and 32, the blocks NPUs compute in.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Processes for featurising.")] = 2,
) -> None:
    """Train PerfSAGE on a dataset's labels (CPU); running again resumes from the checkpoint."""
    from perfsage.cli.progress import Reporter
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.perfsage_gnn.train import Hyper, fit
    from perfsage.targets.registry import target_class

    target_class(target)
    hyper = Hyper(epochs=epochs, patience=patience, hidden=hidden, layers=layers, seed=seed,
                  readout=readout, peak=peak, type_dropout=type_dropout, rates=rates,
                  align=align)
    with Reporter("features", "graphs") as progress:
        data = load_graphset(dataset, target, workers=workers, progress=progress.update)
    sets = split_sets(data, holdout_space)
    info = {"dataset": str(dataset), "holdout_space": holdout_space,
            "spaces": sorted(set(data.spaces.tolist()))}
    with Reporter("train", "epochs") as progress:
        def report(s: dict) -> None:
            progress.update(s["epoch"], epochs, f"loss {s['train_loss']:.4f}, val MAPE "
                            f"{s['val_mape']:.2f}% (best {s['best_val_mape']:.2f}% at "
                            f"{s['best_epoch']})")

        state = fit(sets["train"], sets["val"], target, out, hyper, info=info, progress=report)
    print(f"{target}: best validation MAPE {state['best_val_mape']:.2f}% at epoch "
          f"{state['best_epoch']} of {state['epoch']}; {state['wall_s'] / 60:.1f} min training; "
          f"weights in {out}")


def evaluate(
    weights: Annotated[Path, typer.Argument(help="Weights folder from `perfsage train`.",
                                            show_default=False)],
    dataset: Dataset,
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    plots: Annotated[Path | None, typer.Option(
        help="Folder for scatter plots (PNG); default WEIGHTS/plots-SPLIT.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Accuracy per metric and search space: MAPE, RMSPE, ±5 %, ±10 %, Kendall τ."""
    from rich.table import Table

    from perfsage.errors import UsageError
    from perfsage.eval.report import evaluate as run
    from perfsage.eval.report import scatter_plots
    from perfsage.predictors.graphset import load_graphset, splits
    from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel

    model = PerfSAGEModel.load(weights)
    data = load_graphset(dataset, model.target)
    holdout = model.config.get("trained", {}).get("holdout_space")
    if split not in ("test", "val", "train", "all"):
        raise UsageError(f"--split: {split!r} is not one of test, val, train, all")
    if split != "all":
        data = data.subset(splits(data, holdout)[split])
    pred = model.predict(data.graphs)
    report = run(pred, data.labels, data.spaces, model.metrics)
    scatter_plots(pred, data.labels, data.spaces, list(report), plots or weights / f"plots-{split}",
                  f"{model.target}, {split} split")
    if as_json:
        print(json.dumps({"target": model.target, "split": split, "metrics": report}, indent=1))
        return
    table = Table(title=f"{model.target}: {split} split ({len(data)} models)",
                  title_justify="left")
    for name in ("metric", "space", "n", "MAPE %", "RMSPE %", "±5 %", "±10 %", "Kendall τ"):
        table.add_column(name, justify="left" if name in ("metric", "space") else "right")
    for metric, per in report.items():
        for space, r in per.items():
            table.add_row(metric, space, str(r["n"]), f"{r['mape']:.2f}", f"{r['rmspe']:.2f}",
                          f"{r['within_5']:.1f}", f"{r['within_10']:.1f}",
                          f"{r['kendall_tau']:.3f}")
    fmt.console().print(table)
