"""Train the block predictor on a dataset's train split and report test-split MAPE.

Run: .venv/bin/python benchmarks/train_block.py /work/data/edgedlperf-20k \
         --target ethos-u55-128 [--out DIR]
         [--train-size N] [--epochs 60] [--layer-labels FILE.npz [--collect-layers N]]
Early-stops on the val split (hash-based 80/10/10, as every predictor); ``--train-size``
trains on a seeded draw of N training graphs only (the small-data regime block predictors
aim at). ``--layer-labels`` adds Vela's per-layer cycles as per-block supervision (Ethos-U
targets); ``--collect-layers N`` first runs Vela on the first N graphs of the draw to write
that file (resumable). ``--test-layers`` (with ``--collect-test-layers N``, the first N test
graphs) scores the per-block latencies against Vela's: the share of each network's latency
put on the wrong blocks, sum |predicted - Vela| / sum Vela, averaged over networks.
``--load DIR`` scores a saved predictor instead of training one. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", type=Path, help="save the fitted predictor here")
    parser.add_argument("--train-size", type=int, help="use only this many training graphs")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layer-labels", type=Path, help="per-layer Vela cycles (.npz)")
    parser.add_argument("--layer-weight", type=float, default=0.5,
                        help="weight of the per-layer loss term")
    parser.add_argument("--collect-layers", type=int, default=0,
                        help="first write --layer-labels for this many training graphs")
    parser.add_argument("--test-layers", type=Path, help="per-layer Vela cycles of test graphs")
    parser.add_argument("--collect-test-layers", type=int, default=0,
                        help="first write --test-layers for this many test graphs")
    parser.add_argument("--load", type=Path, help="score this saved predictor, no training")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="another predictor setting, e.g. sharpness=50 (repeatable)")
    args = parser.parse_args()

    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.registry import get_predictor

    sets = split_sets(load_graphset(args.dataset, args.target, workers=1))
    train = sets["train"]
    if args.train_size:
        train = train.subset(np.random.default_rng(args.seed).permutation(len(train))[
            :args.train_size])
    for graphs, count, path in ((train, args.collect_layers, args.layer_labels),
                                (sets["test"], args.collect_test_layers, args.test_layers)):
        if count:
            from perfsage.predictors.block.vela_layers import collect

            collect(args.dataset, args.target, graphs.model_ids[:count].tolist(), path,
                    progress=lambda n, total: print(f"per-layer Vela: {n}/{total}", flush=True))
    start = time.perf_counter()
    if args.load:
        from perfsage.predictors.registry import load_predictor

        predictor = load_predictor(args.load)
    else:
        predictor = get_predictor("block", epochs=args.epochs, seed=args.seed,
                                  layer_weight=args.layer_weight, layer_labels=str(
                                      args.layer_labels) if args.layer_labels else None,
                                  **{k: json.loads(v) for k, v in
                                     (item.split("=", 1) for item in args.set)})
        predictor.progress = lambda epoch, mape: print(
            f"epoch {epoch}: val MAPE {mape:.2f} % ({time.perf_counter() - start:.0f} s)",
            flush=True)
        predictor.fit(train, sets["val"])
    wall = time.perf_counter() - start
    pred = predictor.predict(sets["test"].graphs)
    test = sets["test"].labels
    mape = {m: float(100 * np.mean(np.abs(pred[m] / test[m] - 1)))
            for m in pred if np.all(test[m] > 0)}
    print(json.dumps({"target": args.target, "train": len(train), "val": len(sets["val"]),
                      "test": len(sets["test"]), "fit_s": round(wall, 1),
                      "test_mape_%": {m: round(v, 2) for m, v in mape.items()}}
                     | (_misplaced(predictor, sets["test"], args.test_layers)
                        if args.test_layers else {})))
    if args.out:
        predictor.save(args.out)


def _misplaced(predictor, test, path: Path) -> dict[str, float]:
    """How much of each network's latency the blocks put in the wrong place, vs Vela's."""
    from perfsage.predictors.block.split import split
    from perfsage.predictors.block.vela_layers import block_targets, load

    have = set(load(path))
    pick = [i for i, m in enumerate(test.model_ids.tolist()) if m in have]
    sub = test.subset(np.array(pick, dtype=np.int64))
    wrong = []
    for k, g in enumerate(sub.graphs):
        true = block_targets(path, sub.model_ids[k:k + 1],
                             {"latency_ms": sub.labels["latency_ms"][k:k + 1]},
                             [split(g)], ["latency_ms"])[:, 0]
        pred = predictor.block_costs(g)["costs"]["latency_ms"]
        true = np.nan_to_num(true)
        wrong.append(np.abs(pred - true).sum() / true.sum())
    return {"layer_graphs": len(pick),
            "misplaced_latency_%": round(100 * float(np.mean(wrong)), 2)}


if __name__ == "__main__":
    main()
