"""Vela's CPU fallback from :mod:`perfsage.targets.vela_support` against the real Vela.

Run: .venv/bin/python benchmarks/vela_support_speed.py [--per-space 25] [--float-per-space 8]
         [--random-graphs 120] [--seed 7] [--extra FILE.tflite ...] [--legacy FILE.tflite]
     .venv/bin/python benchmarks/vela_support_speed.py --store DATASET_FOLDER [--every 1]

Models: examples/models, ``--per-space`` int8 and ``--float-per-space`` float32 builds of
every search space (``--random-graphs`` of random-graphs), and any ``--extra`` files (e.g.
Keras-converted models). Each is compiled by Vela for the three Ethos-U targets and placed by
our checks; printed: how often ``cpu_ops`` agrees (a model Vela refuses agrees when we
predict the refusal), how often the per-operator reasons agree too, every disagreement, the
median time of our placement per model (all three targets, the IR already read) and of
Vela's compilation. ``--legacy`` also times Vela's deprecated Python checks on one model
(its TFLite reader plus ``TFLiteSemantic`` and ``TFLiteSupportedOperators``), the
in-process alternative to our restatement.

``--store`` instead compares with the ``cpu_ops`` labels a dataset store already holds
(Vela run by ``perfsage dataset annotate``), every ``--every``-th model, without running
Vela; labels Vela could not produce (status error) are counted apart.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from perfsage.dataset.store import DatasetError, Store
from perfsage.errors import MeasurementError
from perfsage.graph import read_model
from perfsage.spaces import get_space, space_names
from perfsage.targets import get_target
from perfsage.targets.vela_run import run_vela
from perfsage.targets.vela_summary import parse_summary
from perfsage.targets.vela_support import ETHOS_U_TARGETS, cpu_placement, cpu_placements

_WARNING = re.compile(r"Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\n"
                      r"Reason: (.*)\n")
_TENSOR = re.compile(r" \(.*\)$")  # the tensor a data-type message names (see the test)


def models(args: argparse.Namespace) -> dict[str, bytes]:
    """Every model the comparison runs on, by name."""
    found = {p.stem: p.read_bytes() for p in sorted(Path("examples/models").glob("*.tflite"))}
    for name in space_names():
        space = get_space(name)
        count = args.random_graphs if name == "random-graphs" else args.per_space
        for i in range(count):
            config = space.sample_seeded(args.seed, i)
            found[f"{name}-{i}-int8"] = space.build(config)
            if i < args.float_per_space:
                found[f"{name}-{i}-float32"] = space.build(config, dtype="float32")
    for path in args.extra:
        found[Path(path).stem] = Path(path).read_bytes()
    return found


def vela(data: bytes, target: str) -> tuple[int | None, list[tuple[str, str]], float]:
    """Vela's cpu_ops (None when it refuses the model), its (ofm, reason) list and time."""
    start = time.perf_counter()
    try:
        out = run_vela(data, get_target(target).options, target=target)
    except MeasurementError:
        return None, [], time.perf_counter() - start
    seconds = time.perf_counter() - start
    cpu_ops = parse_summary(out.summary_csv, out.console, target=target).cpu_ops
    reasons = sorted((ofm, _TENSOR.sub("", why)) for _, ofm, why in
                     _WARNING.findall(out.console))
    return cpu_ops, reasons, seconds


def legacy_seconds(path: str) -> float:
    """Vela's legacy reader plus its Python checks on one model, in seconds."""
    from ethosu.vela import tflite_model_semantic, tflite_reader, tflite_supported_operators
    from ethosu.vela.operation import Op

    start = time.perf_counter()
    graph = tflite_reader.read_tflite(path, 1, {}, None, None)
    semantic = tflite_model_semantic.TFLiteSemantic()
    supported = tflite_supported_operators.TFLiteSupportedOperators()
    for sg in graph.subgraphs:
        for op in sg.get_all_ops():
            if op.type not in (Op.Const, Op.Placeholder, Op.SubgraphInput):
                _ = semantic.is_operator_semantic_valid(op) and supported.is_operator_supported(op)
    return time.perf_counter() - start


def against_store(folder: str, every: int) -> None:
    """Our cpu_ops against the labels of a dataset store."""
    with Store(folder) as store:
        labels: dict[int, dict[str, float | None]] = {}
        for label in store.labels():
            if label.target in ETHOS_U_TARGETS:
                value = label.metrics["cpu_ops"] if label.status == "ok" else None
                labels.setdefault(label.model_id, {})[label.target] = value
        ids = sorted(labels)[::every]
        agree = compared = vela_failed = rebuilt_differently = 0
        seconds: list[float] = []
        for n, model_id in enumerate(ids, 1):
            try:
                model = read_model(store.model_bytes(model_id))
            except DatasetError:
                rebuilt_differently += 1
                continue
            start = time.perf_counter()
            placed = cpu_placements(model)
            seconds.append(time.perf_counter() - start)
            for target, want in labels[model_id].items():
                if want is None:
                    vela_failed += 1
                    continue
                got = None if placed[target].rejected else placed[target].cpu_ops
                compared += 1
                agree += got == want
                if got != want:
                    print(f"DIFFER model {model_id} {target}: ours {got}, label {want}")
            if n % 1000 == 0:
                print(f"... {n}/{len(ids)} models, {agree}/{compared} agree", flush=True)
    print(f"{len(ids)} models of {folder}: cpu_ops equal to the label on {agree}/{compared} "
          f"(model, target) pairs ({100 * agree / max(compared, 1):.2f} %); "
          f"{vela_failed} labels where Vela failed; {rebuilt_differently} models skipped "
          f"(the builder no longer rebuilds them bit for bit)")
    print(f"our placement, three targets, IR read: median "
          f"{1e3 * statistics.median(seconds):.2f} ms per model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-space", type=int, default=25)
    parser.add_argument("--float-per-space", type=int, default=8)
    parser.add_argument("--random-graphs", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument("--legacy", help="time Vela's legacy Python checks on this model")
    parser.add_argument("--store", help="compare with this dataset store's labels instead")
    parser.add_argument("--every", type=int, default=1, help="with --store: every n-th model")
    args = parser.parse_args()
    if args.store:
        against_store(args.store, args.every)
        return

    found = models(args)
    cpu_placement(next(iter(found.values())), ETHOS_U_TARGETS[0])  # imports Vela's tables
    counts = reasons = compared = reasons_compared = 0
    ours_s: list[float] = []
    vela_s: list[float] = []
    for n, (name, data) in enumerate(found.items(), 1):
        model = read_model(data)
        start = time.perf_counter()
        placed = {t: cpu_placement(model, t) for t in ETHOS_U_TARGETS}
        ours_s.append(time.perf_counter() - start)
        for target, placement in placed.items():
            theirs, their_reasons, seconds = vela(data, target)
            vela_s.append(seconds)
            ours = None if placement.rejected else placement.cpu_ops
            compared += 1
            counts += ours == theirs
            if ours != theirs:
                print(f"DIFFER {name} {target}: ours {ours} ({placement.rejected}), "
                      f"Vela {theirs}")
            if theirs is not None and ours == theirs:
                reasons_compared += 1
                mine = sorted((op.ofm, _TENSOR.sub("", op.reason))
                              for op in placement.operators)
                reasons += mine == their_reasons
                if mine != their_reasons:
                    print(f"REASONS {name} {target}: ours "
                          f"{[r for r in mine if r not in their_reasons][:3]} Vela "
                          f"{[r for r in their_reasons if r not in mine][:3]}")
        if n % 50 == 0:
            print(f"... {n}/{len(found)} models", flush=True)
    print(f"{len(found)} models x {len(ETHOS_U_TARGETS)} targets")
    print(f"cpu_ops (or refusal) equal to Vela's: {counts}/{compared} "
          f"({100 * counts / compared:.1f} %)")
    print(f"per-operator reasons equal too: {reasons}/{reasons_compared}")
    print(f"our placement, three targets, IR read: median "
          f"{1e3 * statistics.median(ours_s):.2f} ms per model, max {1e3 * max(ours_s):.1f} ms")
    print(f"Vela compilation: median {1e3 * statistics.median(vela_s):.1f} ms per model "
          f"and target, max {1e3 * max(vela_s):.0f} ms")
    if args.legacy:
        legacy_seconds(args.legacy)  # first call imports Vela's legacy modules
        print(f"Vela's legacy Python checks on {args.legacy}: "
              f"{1e3 * legacy_seconds(args.legacy):.0f} ms")


if __name__ == "__main__":
    main()
