"""Annotations per second per target with a MeasurePool, and the hours 134,912 models would take.

Run: .venv/bin/python benchmarks/bench_targets.py [--workers 2] [--copies 20] [--target T ...]
Builds five small int8 models with Keras once (test extra, TensorFlow) and caches them under
out/bench_targets/. For each target it starts a pool, lets every worker load its tools on a
warm-up batch, then times ``copies`` passes over the five models. Worker start-up is not in
the rate (a dataset run pays it once). cpu-litert uses its production settings (50 timed
runs) and, holding the machine lock exclusively, never overlaps another measurement.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET_MODELS = 134_912


def small_models(cache: Path) -> dict[str, bytes]:
    names = ["convnet", "dense", "conv8", "conv16", "conv32"]
    if not all((cache / f"{n}.tflite").exists() for n in names):
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers.keras_models import convert, keras, zoo

        k = keras()
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("convnet", "dense"):
            (cache / f"{name}.tflite").write_bytes(convert(zoo(name)))
        for width in (8, 16, 32):
            inp = k.Input((32, 32, 3), batch_size=1)
            x = k.layers.Conv2D(width, 3, padding="same", activation="relu")(inp)
            x = k.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            (cache / f"conv{width}.tflite").write_bytes(convert(k.Model(inp, x)))
    return {n: (cache / f"{n}.tflite").read_bytes() for n in names}


def bench(target: str, models: dict[str, bytes], workers: int, copies: int) -> float:
    from perfsage.targets import MeasurePool

    items = [(f"{name}#{i}", data) for i in range(copies) for name, data in models.items()]
    with MeasurePool([target], workers=workers, timeout_s=120) as pool:
        warm = [(f"warm{i}", models["dense"]) for i in range(workers)]
        assert all(r.ok for r in pool.imap_unordered(warm))
        start = time.perf_counter()
        results = list(pool.imap_unordered(items))
        elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{target}: {len(failed)} failures, e.g. {failed[0].message}")
    return len(results) / elapsed


def main() -> None:
    from perfsage.targets import target_names

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=20, help="passes over the five models")
    parser.add_argument("--target", action="append", choices=target_names())
    args = parser.parse_args()
    models = small_models(ROOT / "out" / "bench_targets")
    total_hours = 0.0
    print(f"{'target':15s} {'models/s':>9s} {'hours for 134,912':>18s}  "
          f"({args.workers} workers, {args.copies} x {len(models)} small models)")
    for target in args.target or target_names():
        rate = bench(target, models, args.workers, args.copies)
        hours = DATASET_MODELS / rate / 3600
        total_hours += hours
        print(f"{target:15s} {rate:9.1f} {hours:18.2f}", flush=True)
    print(f"{'all, in turn':15s} {'':9s} {total_hours:18.2f}")


if __name__ == "__main__":
    main()
