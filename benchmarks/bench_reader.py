"""Models parsed per second for a MobileNetV2-sized int8 model (issue: goal >= 200/s, one core).

Run: .venv/bin/python benchmarks/bench_reader.py [--repeats 15] [--model PATH]
Without --model it builds Keras MobileNetV2 (alpha 1.0, 224x224, int8) once and caches it
under out/ (needs the test extra, TensorFlow). Pins itself to one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mobilenet_v2(cache: Path) -> bytes:
    if not cache.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers import keras_models

        model = keras_models.keras().applications.MobileNetV2(
            weights=None, alpha=1.0, input_shape=(224, 224, 3))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(keras_models.convert(model, samples=1))
    return cache.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=50, help="parses per timed repeat")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    from perfsage.graph import analyze, read_model

    data = args.model.read_bytes() if args.model else mobilenet_v2(ROOT / "out" / "mnv2.tflite")
    model = read_model(data)
    print(f"model: {len(data) / 2**20:.1f} MiB, {len(model.main.operators)} ops, "
          f"{len(model.main.tensors)} tensors")
    for label, work in (("read_model", lambda: read_model(data)),
                        ("read_model + analyze", lambda: analyze(read_model(data)))):
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.batch):
                work()
            rates.append(args.batch / (time.perf_counter() - start))
        q = statistics.quantiles(rates, n=10)
        print(f"{label:22s} median {statistics.median(rates):7.0f} models/s "
              f"(p10 {q[0]:.0f}, p90 {q[-1]:.0f}, "
              f"{args.repeats} repeats of {args.batch}, one core)")


if __name__ == "__main__":
    main()
