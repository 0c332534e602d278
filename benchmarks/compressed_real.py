"""Compressed real models: predicted flash, latency and energy against Vela's.

    nice -n 10 .venv/bin/python benchmarks/compressed_real.py [--targets T,...] [--docs]

Real architectures (the Keras models of ``benchmarks/keras_zoo.py``, built there and cached
under out/keras-zoo; random weights, official converter) compressed by
``perfsage.udc.compress`` at (sparsity, bits) = (0.5, 8), (0.75, 4), (0.9, 2), each
compiled by Vela for every target and predicted by the shipped weights through the one
pipeline (which corrects the network's figures for the weights' encoded size,
``perfsage.predictors.compressed``). Prints per target and configuration the MAPE of
flash (Ethos-U55, whose weights sit in flash), latency and energy, the same for the
uncompressed models, and whether every compressed model takes less flash (U55) or
fewer encoded weight bytes (U65, U85) in Vela than its original. Also times the weight
statistics and encoded-size estimate on the largest model.

Measurements go to a JSONL file (``--out``), one line per (model, configuration, target),
keyed by the compressed file's SHA-256, so a killed run resumes where it stopped.
``--docs`` writes the tables into the "compression" section of docs/udc.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_doc import replace_section  # noqa: E402

#: Small and medium real models: MLPerf Tiny and small-resolution mobile networks.
MODELS = ("mlperf_kws_ds_cnn_s", "mlperf_ic_resnet8", "mlperf_ad_fc_autoencoder",
          "mlperf_vww_mobilenet_v1_0.25_96", "ds_cnn_m_kws", "mobilenet_v1_0.25_128",
          "mobilenet_v1_0.5_128", "mobilenet_v2_0.35_96", "mobilenet_v2_0.5_128",
          "mobilenet_v3_small_0.75_128", "squeezenet_1.1_96_c10", "resnet18_0.5_96",
          "shufflenet_v2_0.5_96")
CONFIGS = ((0.5, 8), (0.75, 4), (0.9, 2))
TARGETS = ("ethos-u55-128",)
METRICS = ("flash_kib", "latency_ms", "energy_mj")
BARS = {"flash_kib": 5.0, "latency_ms": 8.0}
DOC = ROOT / "docs" / "udc.md"
COMMAND = "nice -n 10 .venv/bin/python benchmarks/compressed_real.py"


def model_bytes(name: str) -> bytes:
    """A Keras zoo model's int8 file, built (TensorFlow) unless cached already."""
    path = ROOT / "out" / "keras-zoo" / f"{name}.tflite"
    if not path.is_file():
        import keras_zoo

        path = keras_zoo.build(name)
    return path.read_bytes()


def measure(data: bytes, target: str) -> dict[str, float]:
    """Vela's figures of one model, and its encoded weight bytes (summary CSV)."""
    import csv
    import io

    from perfsage.targets.registry import get_target
    from perfsage.targets.vela_run import run_vela
    from perfsage.targets.vela_summary import parse_summary

    t = get_target(target)
    out = run_vela(data, t.options, target=target)
    row = next(csv.DictReader(io.StringIO(out.summary_csv)))
    figures = t.figures(parse_summary(out.summary_csv, out.console, target=target))
    return {**figures, "encoded_bytes": float(row["total_npu_encoded_weights"])}


def _load(path: Path) -> dict[tuple, dict]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[(r["model"], r["sparsity"], r["bits"], r["target"], r["sha256"])] = r
    return rows


def run(models: list[str], targets: list[str], out: Path) -> list[dict]:
    """Measure (once: resumes from ``out``) and predict every (model, configuration, target)."""
    from perfsage.api import pipeline
    from perfsage.udc.compress import compress

    done = _load(out)
    rows = []
    with out.open("a") as sink:
        for name in models:
            dense = model_bytes(name)
            for sparsity, bits in ((0.0, 8), *CONFIGS):
                data = dense if (sparsity, bits) == (0.0, 8) else compress(dense, sparsity, bits)
                sha = hashlib.sha256(data).hexdigest()
                for target in targets:
                    key = (name, sparsity, bits, target, sha)
                    if key not in done:
                        started = time.perf_counter()
                        done[key] = {"model": name, "sparsity": sparsity, "bits": bits,
                                     "target": target, "sha256": sha,
                                     "measured": measure(data, target),
                                     "seconds": time.perf_counter() - started}
                        sink.write(json.dumps(done[key]) + "\n")
                        sink.flush()
                        print(f"{name} ({sparsity}, {bits}) {target}: measured", flush=True)
                    [found] = pipeline(target).predict([data], level=None)
                    rows.append({**done[key], "predicted": found.figures,
                                 "notes": [n.kind for n in found.notes]})
    return rows


def _ape(row: dict, metric: str) -> float | None:
    m, p = row["measured"].get(metric), row["predicted"].get(metric)
    if m is None or p is None or not m:
        return None
    return abs(p - m) / m * 100


def report(rows: list[dict], targets: list[str]) -> list[str]:
    """The tables, as Markdown lines."""
    lines = []
    for target in targets:
        mine = [r for r in rows if r["target"] == target]
        metrics = [m for m in METRICS if any(_ape(r, m) is not None for r in mine)]
        lines += [f"**{target}** ({len({r['model'] for r in mine})} models)", "",
                  "| (sparsity, bits) | n | " + " | ".join(f"{m} MAPE %" for m in metrics)
                  + " | worst latency miss (model) |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        for sparsity, bits in ((0.0, 8), *CONFIGS, (None, None)):
            group = [r for r in mine if sparsity is None and r["sparsity"] > 0
                     or (r["sparsity"], r["bits"]) == (sparsity, bits)]
            if not group:
                continue
            label = "all compressed" if sparsity is None else (
                "dense (original)" if sparsity == 0 else f"({sparsity}, {bits})")
            cells = []
            for m in metrics:
                errors = [e for e in (_ape(r, m) for r in group) if e is not None]
                cells.append(f"{np.mean(errors):.1f}" if errors else "–")
            worst = max(group, key=lambda r: _ape(r, "latency_ms") or 0.0)
            signed = (worst["predicted"].get("latency_ms", 0) / worst["measured"]["latency_ms"]
                      - 1) * 100
            lines.append(f"| {label} | {len(group)} | " + " | ".join(cells)
                         + f" | {signed:+.1f} ({worst['model']}) |")
        lines += ["", _smaller(mine, target), ""]
    return lines


def _smaller(rows: list[dict], target: str) -> str:
    """Whether every compressed model takes less than its original in Vela."""
    key = "flash_kib" if any(r["measured"].get("flash_kib") for r in rows) else "encoded_bytes"
    dense = {r["model"]: r["measured"][key] for r in rows if r["sparsity"] == 0}
    compressed = [r for r in rows if r["sparsity"] > 0 and r["model"] in dense]
    smaller = sum(r["measured"][key] < dense[r["model"]] for r in compressed)
    ratios = [dense[r["model"]] / r["measured"][key] for r in compressed]
    what = "flash" if key == "flash_kib" else "encoded weight bytes"
    return (f"Smaller than the original in Vela's {what}: {smaller} of {len(compressed)} "
            f"compressed models (by {min(ratios):.2f}x to {max(ratios):.2f}x).")


def timing(name: str) -> str:
    """What compression-awareness costs a prediction, on one model (best of 7, warm)."""
    from perfsage.api import pipeline
    from perfsage.graph import read_model
    from perfsage.graph.weight_stats import weight_stats, weight_tensors
    from perfsage.predictors.compressed import weight_bytes
    from perfsage.udc.compress import compress

    dense_bytes = model_bytes(name)
    small_bytes = compress(dense_bytes, 0.75, 4)
    dense, small = read_model(dense_bytes), read_model(small_bytes)
    tensors = weight_tensors(dense)
    weights = sum(w.tensor.data.size for w in tensors)
    predict = pipeline("ethos-u55-128").predict

    def best(call, repeat: int = 7) -> float:
        call()  # warm: caches and imports
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return min(times) * 1e3

    stats_ms = best(lambda: weight_stats(dense, weight_tensors(dense)))
    bytes_ms = best(lambda: weight_bytes(small, weight_tensors(small)))
    dense_ms = best(lambda: predict([dense_bytes], level=None))
    small_ms = best(lambda: predict([small_bytes], level=None))
    return (f"Cost on {name} ({weights:,} int8 weights, {len(tensors)} layers; best of 7, "
            f"one process): weight statistics {stats_ms:.1f} ms (every Ethos-U prediction); "
            f"encoded sizes of every layer {bytes_ms:.1f} ms (every Ethos-U prediction too: "
            "its own weights against the builder's); a "
            f"whole ethos-u55-128 prediction {dense_ms:.0f} ms dense, {small_ms:.0f} ms "
            "compressed (0.75, 4).")


def fit_flash(folder: Path, per_space: int = 70, seed: int = 0) -> str:
    """Flash bytes per NPU operator that nothing else explains, from a labelled dataset.

    For ``per_space`` models of each task space and the zoo (seeded), Vela's flash less
    the layers' encoded weights (``predictors.compressed.weight_bytes``) and Vela's own
    MEAN and lookup-table constants is left; one constant per NPU operator
    fits it: the median of the models' ratios, which outliers (constants Vela adds for
    operators not modelled) cannot pull (``COMMAND_BYTES_PER_OPERATOR``).
    """
    from perfsage.dataset.store import Store
    from perfsage.graph import read_model
    from perfsage.graph.rewrite import fold_hw_pads
    from perfsage.graph.weight_stats import weight_tensors
    from perfsage.pipeline import _on_npu
    from perfsage.predictors import compressed
    from perfsage.spaces import COVERAGE_SPACES, get_space, space_names
    from perfsage.targets.vela_support import cpu_placement

    rng = np.random.default_rng(seed)
    target = "ethos-u55-128"
    rest, ops = [], []
    with Store(folder) as store:
        for space in [s for s in space_names() if s not in COVERAGE_SPACES] + ["zoo"]:
            labelled = store.labelled_models(target, space=space)
            for i in rng.choice(len(labelled), min(per_space, len(labelled)), replace=False):
                found = labelled[int(i)]
                if not found.metrics.get("flash_kib"):
                    continue  # wholly on the CPU
                model = fold_hw_pads(read_model(get_space(space).build(found.config)))
                on_npu = _on_npu(model, cpu_placement(model, target))
                stored = compressed.weight_bytes(model, weight_tensors(model))
                own = compressed.flash_overhead(model, on_npu) - (
                    compressed.COMMAND_BYTES_PER_OPERATOR * on_npu.sum())
                rest.append(found.metrics["flash_kib"] * 1024 - stored.actual[on_npu].sum()
                            - own)
                ops.append(float(on_npu.sum()))
    rest_a, ops_a = np.array(rest), np.array(ops)
    per_op = float(np.median(rest_a / ops_a))
    return (f"flash left: {per_op:.1f} bytes per NPU operator (median over "
            f"{len(rest)} labelled models of {folder})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="comma-separated Ethos-U targets (default: %(default)s)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "compressed_real.jsonl")
    parser.add_argument("--timing-model", default="mobilenet_v2_1.0_224",
                        help="model whose prediction cost is timed (default: %(default)s)")
    parser.add_argument("--docs", action="store_true", help=f"write the tables into {DOC}")
    parser.add_argument("--fit-flash", type=Path, metavar="DATASET",
                        help="fit the command-stream bytes per operator on a dataset labelled "
                             "for ethos-u55-128, print it and stop")
    args = parser.parse_args(argv)
    if args.fit_flash:
        print(fit_flash(args.fit_flash))
        return 0
    targets = args.targets.split(",")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = run(args.models.split(","), targets, args.out)
    command = COMMAND + (f" --targets {args.targets}" if args.targets != ",".join(TARGETS)
                         else "")
    lines = [f"Measured on real models: `{command}`", "",
             f"{len({r['model'] for r in rows})} Keras models ({', '.join(args.models.split(','))}"
             f"; random weights, built by `benchmarks/keras_zoo.py`) compressed with "
             "`perfsage.udc.compress` (magnitude pruning, then per-channel clustering), "
             "compiled by Vela 5.2 and predicted by the shipped weights. MAPE of the "
             "predicted figure against Vela's; bars: flash ≤ 5 %, latency ≤ 8 %.", "",
             *report(rows, targets), timing(args.timing_model)]
    print("\n".join(lines))
    if args.docs:
        replace_section("compression-figures", lines, DOC)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
