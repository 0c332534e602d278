"""`perfsage predict --per-layer` against Vela's own per-layer table, on real models.

    nice -n 10 .venv/bin/python benchmarks/per_layer_real.py [--targets T ...] [--no-doc]

The additive readout splits a model's latency into per-operator costs that add up to the
figure `predict` reports (``perfsage.predict_layers``). Vela's ``--verbose-performance``
table gives its cycles per operator (``predictors.block.vela_layers.per_operator``). For
every real model of benchmarks/real_models.py that Vela labelled (the .tflite files under
out/keras-zoo with the SHA-256 of data/real-models/labels.csv), each operator of the model
is matched by its output tensor's name, Vela's cycles are scaled so that they add up to
Vela's latency for the model, and both are summed per operator type over the models.

Per target it reports: per operator type, Vela's and the network's milliseconds and their
ratio (where the network's cost of a kind of operator is wrong on architectures it never
saw); and per model, how much of Vela's time the per-layer rows put in the wrong place,
``sum |predicted_op - vela_op| / vela_total`` (0 when every row is right, 2 at worst).
Writes the ``per-layer`` section of docs/results.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_doc import replace_section  # noqa: E402

LABELS = ROOT / "data" / "real-models" / "labels.csv"
MODELS = ROOT / "out" / "keras-zoo"
TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")
#: Operator types listed per target (the rest are summed into one row).
TOP_TYPES = 14


def labelled(target: str) -> list[tuple[str, Path, float]]:
    """(model, file, Vela's latency in ms) of each real model labelled for ``target``."""
    out = []
    with LABELS.open(newline="") as f:
        for row in csv.DictReader(f):
            path = MODELS / f"{row['model']}.tflite"
            if (row["target"] != target or row["status"] != "ok" or not row["latency_ms"]
                    or not path.is_file()):
                continue
            if hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]:
                out.append((row["model"], path, float(row["latency_ms"])))
    return out


def compare(path: Path, target: str, latency_ms: float) -> list[tuple[str, float, float]]:
    """(operator type, Vela ms, predicted ms) per operator the pipeline predicts."""
    from perfsage.api import pipeline
    from perfsage.graph import read_model
    from perfsage.predictors.block.vela_layers import per_operator

    data = path.read_bytes()
    raw = read_model(data, details=True).main
    cycles = per_operator(data, target)[:, 0]
    vela_ms = cycles / max(cycles.sum(), 1.0) * latency_ms
    raw_index = {}
    for op in raw.operators:
        for t in op.outputs:
            if t >= 0:
                raw_index.setdefault(raw.tensors[t].name, op.index)
    pipe = pipeline(target)
    ir, graph = pipe.read(path, details=True)
    costs, _ = pipe.network.operator_costs(graph)["latency_ms"]
    rows, matched = [], set()
    for op, cost in zip(ir.main.operators, costs, strict=True):
        found = next((raw_index[ir.main.tensors[t].name] for t in op.outputs
                      if t >= 0 and ir.main.tensors[t].name in raw_index), None)
        truth = float(vela_ms[found]) if found is not None else 0.0
        if found is not None:
            matched.add(found)
        rows.append((op.opcode, truth, float(cost)))
    # Operators the pipeline folded away (a PAD into its convolution): Vela's time for them
    # stays in the comparison, with no predicted row of their own.
    rows += [(op.opcode, float(vela_ms[op.index]), 0.0) for op in raw.operators
             if op.index not in matched and vela_ms[op.index] > 0]
    return rows


def target_lines(target: str) -> list[str]:
    """Markdown for one target: operator types, then the per-model misplacement."""
    vela, predicted, count = defaultdict(float), defaultdict(float), defaultdict(int)
    misplaced = []
    models = labelled(target)
    for name, path, latency in models:
        rows = compare(path, target, latency)
        for opcode, truth, guess in rows:
            vela[opcode] += truth
            predicted[opcode] += guess
            count[opcode] += 1
        misplaced.append((sum(abs(g - t) for _, t, g in rows) / latency, name))
    order = sorted(vela, key=lambda k: vela[k], reverse=True)
    head, rest = order[:TOP_TYPES], order[TOP_TYPES:]
    lines = [f"### {target} ({len(models)} models)", "",
             "| operator | operators | Vela ms | predicted ms | predicted / Vela |",
             "|---|---|---|---|---|"]

    def row(label: str, names: list[str]) -> str:
        v = sum(vela[k] for k in names)
        p = sum(predicted[k] for k in names)
        ratio = f"{p / v:.2f}" if v > 0 else "–"
        return (f"| {label} | {sum(count[k] for k in names)} | {v:.4g} | {p:.4g} | "
                f"{ratio} |")

    lines += [row(k, [k]) for k in head]
    if rest:
        lines.append(row(f"{len(rest)} other types", rest))
    share = np.array([m for m, _ in misplaced]) * 100
    worst = sorted(misplaced, reverse=True)[:3]
    lines += ["", f"Vela's time the per-layer rows put in the wrong place, per model: median "
              f"{np.median(share):.0f} %, 90th percentile {np.percentile(share, 90):.0f} %; "
              "most: " + ", ".join(f"{n} {m * 100:.0f} %" for m, n in worst) + ".", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    start = time.time()
    lines = ["## Per-layer costs against Vela's per-layer table (real models)", "",
             "Regenerate: `nice -n 10 .venv/bin/python benchmarks/per_layer_real.py`", "",
             "`perfsage predict --per-layer` (and `perfsage.predict_layers`) gives each "
             "operator's share of the network's latency; Vela's `--verbose-performance` table "
             "gives its own. Real Keras models of benchmarks/keras_zoo.py (the files Vela "
             "labelled in data/real-models/labels.csv), operators matched by output tensor; "
             "Vela's per-layer cycles scaled to add up to its latency. The network's "
             "per-network overhead is not in the operator rows. The shipped weights. Where "
             "Vela fuses operators (an activation it computes as a lookup table in its "
             "producer's output stage, a concatenation its producers write into) its table "
             "names the pass after the last of them, so the pass's cycles land on that "
             "operator: a type far under 1 (HARD_SWISH, CONCATENATION) next to its producer "
             "over 1 is partly that attribution, not only a miss. Types Vela does not fuse "
             "(PAD it cannot fold, SOFTMAX, which it lowers to some 30 passes) are misses.",
             ""]
    for target in args.targets:
        print(f"{target} ...", flush=True)
        lines += target_lines(target)
    lines.append(f"_Written in {time.time() - start:.0f} s._")
    print("\n".join(lines))
    if not args.no_doc:
        replace_section("per-layer", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
