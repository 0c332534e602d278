"""Models generated per second per space, on one and two workers, and the projected time
for an EdgeDLPerf-sized dataset (134,912 models, split evenly over the four task spaces).

Run: .venv/bin/python benchmarks/bench_generate.py [--count 200] [--repeats 3]
Goal (issue #3): all 134,912 generated in <= 1 hour on this 2-core machine.
Generation includes sampling, building, parsing, analysis, hashing and the SQLite insert.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from perfsage.dataset.generate import generate

TASK_SPACES = ("image-classification", "keyword-spotting", "super-resolution",
               "object-detection")
TOTAL = 134_912


def rate(space: str, count: int, workers: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate(folder, space, count, seed=seed, workers=workers)
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="models per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    per_space = {}
    print(f"{'space':22s} {'1 worker':>22s} {'2 workers':>22s}   (models/s: median [min-max])")
    for space in (*TASK_SPACES, "nasbench201"):
        cells = []
        for workers in (1, 2):
            rates = [rate(space, args.count, workers, seed=r) for r in range(args.repeats)]
            cells.append(f"{statistics.median(rates):7.1f} [{min(rates):.1f}-{max(rates):.1f}]")
            per_space[space, workers] = statistics.median(rates)
        print(f"{space:22s} {cells[0]:>22s} {cells[1]:>22s}")
    share = TOTAL / len(TASK_SPACES)
    for workers in (1, 2):
        seconds = sum(share / per_space[s, workers] for s in TASK_SPACES)
        print(f"projected time for {TOTAL:,} models ({share:,.0f} per task space), "
              f"{workers} worker(s): {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
