"""Where a leave-one-space-out prediction goes wrong, operator type by operator type.

Run: .venv/bin/python benchmarks/loso_per_operator.py --weights DIR --dataset DATASET
         [--models 30]

DIR holds Ethos-U weights trained with ``--holdout-space`` and the additive readout. For
the first ``--models`` models of the held-out space, the network's per-operator latency
(``PerfSAGEModel.operator_costs``) is set against Vela's per-layer cycles for the same
operators (``block.vela_layers.per_operator``, scaled so they add up to the measured
latency), and both are summed per operator type. A ratio far from 1 names the operator
types whose cost the other spaces did not teach.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from perfsage.dataset.store import Store
from perfsage.graph import read_model
from perfsage.predictors.block.vela_layers import per_operator
from perfsage.predictors.features import featurize
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel
from perfsage.spaces import get_space


def held_out_models(dataset: Path, space: str, target: str, count: int) -> list[tuple]:
    """(config, measured latency) of the first ``count`` labelled models of ``space``."""
    with Store(dataset) as store:
        rows = store.labelled_models(target, space=space, limit=count)
    return [(r.config, r.metrics["latency_ms"]) for r in rows]


def per_type(model: PerfSAGEModel, dataset: Path, count: int) -> list[str]:
    """Markdown rows: operator type, count, measured and predicted ms summed, their ratio."""
    space = model.config["trained"]["holdout_space"]
    measured, predicted, seen = defaultdict(float), defaultdict(float), defaultdict(int)
    overhead = measured_total = 0.0
    for config, latency in held_out_models(dataset, space, model.target, count):
        data = get_space(space).build(config)
        ir = read_model(data)
        costs, extra = model.operator_costs(featurize(ir))["latency_ms"]
        cycles = per_operator(data, model.target)[:, 0]
        share = cycles / cycles.sum() * latency  # Vela's cycles, in the label's ms
        for op, truth, guess in zip(ir.main.operators, share, costs, strict=True):
            measured[op.opcode] += truth
            predicted[op.opcode] += guess
            seen[op.opcode] += 1
        overhead += extra
        measured_total += latency
    lines = [f"Held-out space {space}, {model.target}, {count} models; the network's "
             f"per-network overhead adds {overhead:.4g} ms to {sum(predicted.values()):.4g} ms "
             f"of operator costs, against {measured_total:.4g} ms measured.", "",
             "| operator | count | measured ms | predicted ms | predicted / measured |",
             "|---|---|---|---|---|"]
    for name in sorted(measured, key=measured.get, reverse=True):
        ratio = predicted[name] / measured[name] if measured[name] else float("nan")
        lines.append(f"| {name} | {seen[name]} | {measured[name]:.4g} | {predicted[name]:.4g} | "
                     f"{ratio:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--models", type=int, default=30)
    args = parser.parse_args()
    model = PerfSAGEModel.load(args.weights)
    if not model.config.get("trained", {}).get("holdout_space"):
        raise SystemExit(f"loso_per_operator: {args.weights} was not trained with "
                         "--holdout-space")
    if not model.config.get("additive"):
        raise SystemExit(f"loso_per_operator: {args.weights} uses the pooled readout, which "
                         "has no per-operator costs")
    print("\n".join(per_type(model, args.dataset, args.models)))


if __name__ == "__main__":
    main()
