"""Graphs predicted per second by `perfsage.predict_many`, and the cold start of `perfsage predict`.

Run: .venv/bin/python benchmarks/bench_predict.py [--weights DIR] [--models DIR] [--repeats 5]

The project's bar: batched prediction >= 1,000 graphs/s on 2 cores, file read and parse
included, and `perfsage predict` on one model <= 2 s from a cold start.

Models: 410 from the search spaces (image classification, object detection, keyword
spotting, super resolution, NAS-Bench-201; sample_seeded(99, i)), built once into
out/bench-predict/models unless --models names a folder of .tflite files. Weights: the
shipped ethos-u55-128 weights, or --weights DIR from `perfsage train`.

One process, two new worker processes and two kept ones (predict_many keeps its workers
between calls, as a NAS loop's next batch finds them) are timed in turn in each repeat, so
all see the same machine load; the table gives the median and the spread of graphs/s over
the repeats, the ratios paired with one process, and graphs per CPU-second (this process
and its workers), which depends less on what else the machine runs: 500 per CPU-second
means 1,000/s on two free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "perfsage" / "weights" / "ethos-u55-128"
MODELS = ROOT / "out" / "bench-predict" / "models"
#: (search space, models) as in the generated set the bar was set on.
SPACES = (("image-classification", 110), ("object-detection", 90), ("keyword-spotting", 90),
          ("super-resolution", 80), ("nasbench201", 40))


def weights_folder(given: Path | None) -> Path:
    """The weights to time with; exits with one line when there are none."""
    folder = given or SHIPPED
    if not (folder / "config.json").is_file():
        where = f"{given} holds no config.json" if given else f"no shipped weights at {SHIPPED}"
        sys.exit(f"bench_predict: {where}; pass --weights DIR (a folder from "
                 "`perfsage train`)")
    return folder


def model_paths(folder: Path | None) -> list[Path]:
    """The .tflite files to predict, built into out/ the first time when none are given."""
    if folder is None:
        folder = MODELS
        if not any(folder.glob("*.tflite")):
            build_models(folder)
    paths = sorted(folder.glob("*.tflite"))
    if not paths:
        sys.exit(f"bench_predict: no .tflite files in {folder}")
    return paths


def build_models(folder: Path) -> None:
    from perfsage.spaces import get_space

    folder.mkdir(parents=True, exist_ok=True)
    print(f"building {sum(n for _, n in SPACES)} models into {folder} ...", flush=True)
    for name, count in SPACES:
        space = get_space(name)
        for i in range(count):
            (folder / f"{name}-{i}.tflite").write_bytes(space.build(space.sample_seeded(99, i)))


def cpu_seconds() -> float:
    """CPU time of this process, of its finished children, and of the workers predict_many
    keeps alive (read from /proc: a live child's time is not in ``os.times``)."""
    from perfsage import api

    t = os.times()
    kept = 0.0
    for pool in api._POOL.values():
        for worker in pool._pool:
            fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
            kept += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return t.user + t.system + t.children_user + t.children_system + kept


#: (label, workers, whether the workers are kept from the previous call)
MODES = (("1 process", 1, False), ("2, new workers", 2, False), ("2, kept workers", 2, True))


def timed_predictions(paths: list[Path], weights: Path, workers: int,
                      keep: bool = False) -> tuple[float, float]:
    """(graphs per wall second, graphs per CPU-second) of one predict_many call.

    Without ``keep`` the workers are ended inside the timing (their CPU time then counts
    once they are reaped); with it they come from, and stay for, the calls around it.
    """
    import perfsage

    if keep:
        perfsage.predict_many(paths[:2 * 64 * workers], weights=str(weights),
                              workers=workers)  # the kept workers, warmed up
    else:
        perfsage.close_workers()
    cpu, wall = cpu_seconds(), time.perf_counter()
    out = perfsage.predict_many(paths, weights=str(weights), workers=workers)
    wall = time.perf_counter() - wall
    if not keep:
        perfsage.close_workers()
    cpu = cpu_seconds() - cpu
    assert len(out) == len(paths)
    return len(paths) / wall, len(paths) / cpu


def stage_rates(paths: list[Path], weights: Path) -> dict[str, float]:
    """Graphs per CPU-second of each stage, in this process, run as predict_many runs them.

    Each file is mapped and read (``details=False``), featurized (cost analysis included)
    and dropped, with the cycle collector paused; the network then runs on them in batches
    of ``api.BATCH``.
    """
    import gc

    from perfsage.api import BATCH
    from perfsage.graph import read_model
    from perfsage.graph.reader import mapped
    from perfsage.predictors.features import featurize
    from perfsage.predictors.shipped import load_model

    net = load_model(None, str(weights))
    spent = {"read+parse": 0.0, "featurize": 0.0, "forward": 0.0}
    graphs = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for path in paths:
            start = time.process_time()
            with mapped(path) as (contents, name):
                model = read_model(contents, name=name, details=False)
                parsed = time.process_time()
                graphs.append(featurize(model))
                del model  # so that leaving the block unmaps the file
                featurized = time.process_time()
            spent["read+parse"] += parsed - start + time.process_time() - featurized
            spent["featurize"] += featurized - parsed
        start = time.process_time()
        for i in range(0, len(graphs), BATCH):
            net.predict(graphs[i:i + BATCH])
        spent["forward"] = time.process_time() - start
    finally:
        if enabled:
            gc.enable()
    return {stage: len(paths) / seconds for stage, seconds in spent.items()}


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):8.0f} {min(values):8.0f} {max(values):8.0f}")


def throughput(paths: list[Path], weights: Path, repeats: int) -> None:
    timed_predictions(paths[:40], weights, 1)  # imports and weights, once
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in MODES}
    stages: list[dict[str, float]] = []
    for _ in range(repeats):
        for label, workers, keep in MODES:
            runs[label].append(timed_predictions(paths, weights, workers, keep))
        stages.append(stage_rates(paths, weights))
    import perfsage

    perfsage.close_workers()
    print(f"\npredict_many over {len(paths)} models, {repeats} repeats "
          "(graphs/s: median, min, max)")
    print(f"{'':16s}{'wall':>26s}   {'per CPU-second':>26s}")
    for label, _, _ in MODES:
        wall, cpu = zip(*runs[label], strict=True)
        print(f"{label:16s}{spread(list(wall))}   {spread(list(cpu))}")
    for label in ("2, new workers", "2, kept workers"):
        ratios = [b[0] / a[0] for a, b in zip(runs["1 process"], runs[label], strict=True)]
        print(f"{'ratio ' + label[3:]:16s}{statistics.median(ratios):8.2f} {min(ratios):8.2f} "
              f"{max(ratios):8.2f}   (paired with 1 process, wall)")
    print("stages, 1 process, graphs per CPU-second (median): " + ", ".join(
        f"{k} {statistics.median(s[k] for s in stages):.0f}" for k in stages[0]))


def cold_start(weights: Path, runs: int) -> None:
    """Wall time of `perfsage predict` on each example model, as a fresh process."""
    target = json.loads((weights / "config.json").read_text())["target"]
    for example in sorted((ROOT / "examples" / "models").glob("*.tflite")):
        command = [sys.executable, "-m", "perfsage", "predict", str(example), "--target",
                   target, "--weights", str(weights), "--json"]
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"cold start `perfsage predict {example.name}`: median {statistics.median(times):.2f}"
              f" s (min {min(times):.2f}, max {max(times):.2f}, {runs} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="weights folder (default: shipped "
                        "ethos-u55-128)")
    parser.add_argument("--models", type=Path, help="folder of .tflite files")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--blas-threads", type=int, help="threads for NumPy's BLAS (default: "
                        "its own choice, one per CPU)")
    args = parser.parse_args()
    if args.blas_threads:  # before anything imports NumPy
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.blas_threads)
    weights = weights_folder(args.weights)
    paths = model_paths(args.models)
    print(f"weights {weights}; {len(paths)} models from {paths[0].parent}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"BLAS threads {args.blas_threads or 'default'}")
    cold_start(weights, args.cold_runs)
    throughput(paths, weights, args.repeats)


if __name__ == "__main__":
    main()
