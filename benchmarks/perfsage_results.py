"""Accuracy and speed of the shipped PerfSAGE weights; writes docs/results.md.

Run (after the dataset behind the weights is rebuilt, see docs/perfsage.md):

    .venv/bin/python benchmarks/perfsage_results.py --dataset DATASET [--loso-dir DIR ...]

For every target with shipped weights it evaluates the held-out test split (by graph
hash; never seen in training or validation) per metric and per search space, saves a
log-log scatter plot per metric under docs/plots/<target>/, and, when ``--loso-dir`` holds
weights trained with ``--holdout-space`` (one folder per space), reports the
leave-one-space-out latency error. Figures are measured on each run, never copied.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from results_doc import RESULTS, replace_section

from perfsage.eval.metrics import summary
from perfsage.eval.report import evaluate, scatter_plots
from perfsage.predictors.graphset import load_graphset, splits, without_rare_zeros
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel
from perfsage.predictors.shipped import shipped_targets, weights_dir
from perfsage.spaces import COVERAGE_SPACES

BARS = {"latency_ms": 3.0, "energy_mj": 3.0, "sram_kib": 2.0, "flash_kib": 2.0}


def _table(report: dict, metrics: list[str]) -> list[str]:
    lines = ["| metric | space | n | MAPE % | RMSPE % | ±5 % | ±10 % | Kendall τ |",
             "|---|---|---|---|---|---|---|---|"]
    for m in metrics:
        for space, r in report.get(m, {}).items():
            lines.append(f"| {m} | {space} | {r['n']} | {r['mape']:.2f} | {r['rmspe']:.2f} | "
                         f"{r['within_5']:.1f} | {r['within_10']:.1f} | {r['kendall_tau']:.3f} |")
    return lines


def accuracy(dataset: Path, target: str, plots: Path) -> tuple[list[str], dict]:
    model = PerfSAGEModel.load(weights_dir(target))
    data = load_graphset(dataset, target)
    # As training and `perfsage evaluate`: no relative error for the rare zero labels (the
    # models Vela leaves wholly on the CPU, which prediction reports as such).
    data = without_rare_zeros(data)
    test = data.subset(splits(data)["test"])
    pred = model.predict(test.graphs)
    report = evaluate(pred, test.labels, test.spaces, model.metrics)
    tasks = ~np.isin(test.spaces, COVERAGE_SPACES)
    if not tasks.all():  # the bars are set for the task spaces; coverage graphs apart
        for m, per in report.items():
            per["task spaces"] = summary(pred[m][tasks], test.labels[m][tasks])
    scatter_plots(pred, test.labels, test.spaces, list(report), plots / target,
                  f"{target}, test split")
    trained = model.config["trained"]
    lines = [f"#### {target}", "",
             f"Trained on {trained['train_graphs']:,} graphs (validation {trained['val_graphs']:,})"
             f"; test split: {len(test):,} graphs never seen in training.", ""]
    lines += _table(report, list(report))
    lines += ["", "Plots: " + ", ".join(f"[{m}](plots/{target}/scatter-{m}.png)"
                                         for m in report), ""]
    return lines, report


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"


def real_world(targets: list[str]) -> list[str]:
    """Predicted against measured on the bundled example models, none from our spaces.

    Measured through the measurement pool, whose worker processes survive a tool that
    aborts on a model (TFLite Micro can).
    """
    from perfsage import predict_many
    from perfsage.targets import MeasurePool

    paths = sorted(EXAMPLES.glob("*.tflite"))
    with MeasurePool(targets, workers=2, timeout_s=300) as pool:
        measured = {(r.key, r.target): r for r in
                    pool.imap_unordered((p.stem, p.read_bytes()) for p in paths)}
    lines = ["| model | target | metric | measured | predicted | error % |",
             "|---|---|---|---|---|---|"]
    for target in targets:
        for path, pred in zip(paths, predict_many(paths, target), strict=True):
            r = measured[(path.stem, target)]
            if not r.ok:
                why = (r.message or r.status).splitlines()[0][:80].replace("|", "/")
                lines.append(f"| {path.stem} | {target} | – | not measurable: {why} | | |")
                continue
            for m in ("latency_ms", "sram_kib", "arena_kib", "flash_kib", "energy_mj"):
                if r.metrics.get(m, 0) > 0 and m in pred:
                    y = r.metrics[m]
                    lines.append(f"| {path.stem} | {target} | {m} | {y:.4g} | {pred[m]:.4g} | "
                                 f"{100 * (pred[m] / y - 1):+.1f} |")
    return lines


def readout_name(hyper: dict) -> str:
    """The readout options a weights folder was trained with, in words."""
    name = hyper.get("readout", "pool")
    if name == "additive" and hyper.get("rates"):
        name += " with rates"
    if hyper.get("peak"):
        name += ", peak memory"
    if hyper.get("type_dropout"):
        name += f", type dropout {hyper['type_dropout']:g}"
    if hyper.get("align"):
        name += ", channel alignment"
    if hyper.get("roofline"):
        name += ", roofline inputs and anchor"
    return name


def loso(dataset: Path, folders: list[Path]) -> list[str]:
    """Latency on each held-out space, one row per (space, weights) under ``folders``."""
    lines = ["| held-out space | random graphs in training | readout | epochs | n | "
             "latency MAPE % | ±10 % | Kendall τ |", "|---|---|---|---|---|---|---|---|"]
    data = {}
    for folder in folders:
        for sub in sorted(p for p in folder.iterdir() if (p / "config.json").exists()):
            model = PerfSAGEModel.load(sub)
            space = model.config["trained"]["holdout_space"]
            if model.target not in data:
                data[model.target] = load_graphset(dataset, model.target)
            everything = without_rare_zeros(data[model.target])
            test = everything.subset(splits(everything, space)["test"])
            report = evaluate(model.predict(test.graphs), test.labels, test.spaces,
                              ["latency_ms"])
            r = report["latency_ms"]["all"]
            hyper = model.config["hyper"]
            coverage = "random-graphs" in model.config["trained"].get("spaces", [])
            lines.append(f"| {space} ({model.target}) | {'yes' if coverage else 'no'} | "
                         f"{readout_name(hyper)} | "
                         f"{hyper['epochs']} | {r['n']} | {r['mape']:.2f} | "
                         f"{r['within_10']:.1f} | {r['kendall_tau']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--loso-dir", type=Path, nargs="*", default=[],
                        help="folders of weights trained with --holdout-space, one per space")
    args = parser.parse_args()
    start = time.time()
    lines = ["## PerfSAGE GNN: shipped weights", "",
             "Regenerate with `.venv/bin/python benchmarks/perfsage_results.py --dataset "
             "DATASET [--loso-dir DIR ...]` (see docs/perfsage.md for the dataset and weights).",
             f"Machine: {platform.machine()}, {platform.python_version()}; "
             f"run {time.strftime('%Y-%m-%d')}.", "", "### Accuracy on the held-out test split",
             ""]
    reports = {}
    for target in shipped_targets():
        section, reports[target] = accuracy(args.dataset, target, RESULTS.parent / "plots")
        lines += section
    lines += ["### Bars (issue #5)", "",
              "On the task spaces' test graphs; beside them each coverage space's (no task: "
              + ", ".join(COVERAGE_SPACES) + ") and all test graphs together.", "",
              "| target | metric | MAPE % | bar % | ±10 % | "
              + " | ".join(f"{s} MAPE %" for s in COVERAGE_SPACES)
              + " | all test graphs MAPE % |", "|---|---|---|---|---|"
              + "---|" * (len(COVERAGE_SPACES) + 1)]
    for target, report in reports.items():
        if not target.startswith("ethos-u"):
            continue  # the issue sets bars for the Ethos-U targets only
        factor = 1.0 if target == "ethos-u55-128" else 1.5
        for m, bar in BARS.items():
            if m in report:
                per = report[m]
                r = per.get("task spaces", per["all"])
                extra = " | ".join(f"{per[k]['mape']:.2f}" if k in per else "–"
                                   for k in (*COVERAGE_SPACES, "all"))
                lines.append(f"| {target} | {m} | {r['mape']:.2f} | {bar * factor:.1f} | "
                             f"{r['within_10']:.1f} | {extra} |")
    lines += ["", "### Real-world models (not from our search spaces)", "",
              "The bundled example models (examples/models: a DS-CNN keyword spotter, "
              "MobileNetV2 0.35 at 96 px, and an operator zoo with types no training network "
              "has), measured by the target's tool and predicted by the shipped weights.",
              ""] + real_world(list(reports))
    if args.loso_dir:
        lines += ["", "### Leave one space out (latency)", "",
                  "Each row: `perfsage train DATASET --target TARGET --holdout-space "
                  "SPACE --epochs 6 --patience 4` with the readout options in the table (the "
                  "defaults: additive with rates, peak memory, type dropout 0.1, channel "
                  "alignment, roofline inputs and anchor), tested on every graph of the "
                  "held-out space (less the models Vela leaves wholly on the CPU). DATASET: "
                  "the task spaces, the random graphs and the zoo "
                  "(`perfsage dataset import data/edgedlperf-20k.parquet "
                  "data/random-graphs-6k.parquet data/zoo/*.parquet --out DATASET`). Earlier "
                  "rows, for the task spaces held out under older options, are in "
                  "docs/perfsage.md.",
                  ""] + loso(args.dataset, args.loso_dir)
    lines += ["", f"_Written in {time.time() - start:.0f} s._", ""]
    replace_section("perfsage-gnn", lines)
    print(json.dumps({t: {m: per["all"] for m, per in report.items()}
                      for t, report in reports.items()}, indent=1, default=float))


if __name__ == "__main__":
    main()
