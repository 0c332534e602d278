"""Build time of ModelBuilder models (goals: MobileNetV2 int8 <= 50 ms, KWS-size a few ms).

Run: .venv/bin/python benchmarks/bench_builder.py [--repeats 15]
Times every layer call plus ``build()`` (weights, quantisation, flatbuffer) for MobileNetV2
(3.5 M parameters, 65 operators, 224x224) and DS-CNN keyword spotting, int8 and float32,
with different seeds per repeat. Pins itself to one core, as dataset generation runs one
model per core; prints the median, the spread (min, quartiles, max) and models per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sys.path.insert(0, str(ROOT / "tests" / "builder"))
    import nets

    cases = [("MobileNetV2 224 int8", nets.mobilenet_v2, "int8"),
             ("MobileNetV2 224 float32", nets.mobilenet_v2, "float32"),
             ("DS-CNN KWS int8", nets.ds_cnn, "int8"),
             ("DS-CNN KWS float32", nets.ds_cnn, "float32")]
    print(f"{'model':26} {'median ms':>10} {'min':>7} {'q1':>7} {'q3':>7} {'max':>7} "
          f"{'models/s':>9} {'MB':>6}")
    for name, make, dtype in cases:
        data = make(seed=0, dtype=dtype)  # warm up: imports, caches
        times = []
        for seed in range(1, args.repeats + 1):
            start = time.perf_counter()
            make(seed=seed, dtype=dtype)
            times.append(1000 * (time.perf_counter() - start))
        q1, _, q3 = statistics.quantiles(times, n=4)
        median = statistics.median(times)
        print(f"{name:26} {median:10.1f} {min(times):7.1f} {q1:7.1f} {q3:7.1f} {max(times):7.1f} "
              f"{1000 / median:9.1f} {len(data) / 1e6:6.2f}")


if __name__ == "__main__":
    main()
