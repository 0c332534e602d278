"""Which predictor to trust, and how much data it needs: `perfsage compare` into docs/results.md.

Run:

    .venv/bin/python benchmarks/compare_results.py --dataset DATASET --target ethos-u55-128

Trains every registered predictor on the same nested training sets (100 ... 10,000 graphs,
as far as the data goes) and scores it on the dataset's whole test split; writes the
``compare-TARGET`` section of docs/results.md and learning curves under
docs/plots/compare-TARGET/. Fits are cached in WORK (default DATASET/compare-TARGET), so a
killed run resumes. The torch-trained predictors get an epoch budget (``EPOCHS``) so the
whole run fits in an hour on two cores; it is stated in the section.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from results_doc import RESULTS, replace_section

from perfsage.eval.compare import SIZES, compare, learning_curves, markdown
from perfsage.predictors.graphset import load_graphset
from perfsage.predictors.registry import predictor_names

#: Epoch budget per torch-trained predictor (early stopping may end sooner).
EPOCHS = {"perfsage-gnn": 40, "brp-nas-gcn": 40, "block": 60}
#: Largest training set per predictor where one fit would take over an hour here (the
#: BRP-NAS GCN's 600-wide dense layers: ~18 CPU-s per epoch on 3,000 graphs).
MAX_SIZE = {"brp-nas-gcn": 3000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--target", default="ethos-u55-128")
    parser.add_argument("--predictors", nargs="*", default=None)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    names = args.predictors or predictor_names()
    settings = {n: {"epochs": EPOCHS[n]} for n in names if n in EPOCHS}
    data = load_graphset(args.dataset, args.target)

    def progress(done: int, total: int, note: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {done}/{total} {note}", flush=True)

    work = args.work or args.dataset / f"compare-{args.target}"
    results = []
    for name in names:
        sizes = [n for n in args.sizes if n <= MAX_SIZE.get(name, n)]
        results += compare(data, [name], work, sizes=sizes, settings=settings,
                           progress=progress)
    plots = RESULTS.parent / "plots" / f"compare-{args.target}"
    paths = learning_curves(results, plots, args.target)
    command = (f"`.venv/bin/python benchmarks/compare_results.py --dataset DATASET --target "
               f"{args.target}`")
    lines = [f"## Predictors compared: {args.target}", "",
             f"Regenerate with {command} (DATASET: EdgeDLPerf-20k, see docs/perfsage.md). "
             "Every predictor trains on the same nested training sets (the first n of one "
             "seeded shuffle of the train split), early-stops on n/9 validation graphs, and is "
             "scored on the whole test split. Epoch budgets: "
             + ", ".join(f"{k} {v}" for k, v in settings.items())
             + "; largest training set: "
             + ", ".join(f"{k} {v:,}" for k, v in MAX_SIZE.items() if k in names)
             + ". Train time is wall time on a shared 2-core machine "
             f"({platform.machine()}, one thread per fit); prediction time is per graph on "
             "features already computed (parsing excluded).", "",
             "Learning curves: " + ", ".join(
                 f"[{p.stem.removeprefix('learning-')}](plots/compare-{args.target}/{p.name})"
                 for p in paths), ""]
    lines += markdown(results, args.target)
    fit_s = sum(r["train_s"] for r in results)
    lines += [f"_{len(results)} fits, {fit_s / 60:.0f} min of training in all; written "
              f"{time.strftime('%Y-%m-%d')}._"]
    replace_section(f"compare-{args.target}", lines)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
