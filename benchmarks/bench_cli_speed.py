"""PerfSAGE against its floor and against Vela, on real-size models, as paired ratios.

    .venv/bin/python benchmarks/bench_cli_speed.py [--rounds 11] [--calls 15] [--many 512]

Four figures, each measured side by side in one run so that the machine's drift cancels:

1. `perfsage predict` on the MLPerf Tiny DS-CNN as a process, against the floor of any NumPy
   program, `python -c "import numpy"`: CPU seconds of each whole process (children's
   rusage), in alternating pairs; the median of the per-pair ratios and their spread.
2. `perfsage predict` against the `vela` command on Keras MobileNetV2 1.0/224 (int8): CPU
   of each process, paired the same way.
3. In-process, one `perfsage.predict` call per model (what a search loop does) against Vela
   compiling the same model in-process (`perfsage.targets.vela_run.run_vela`), on the real
   models of benchmarks/keras_zoo.py plus the bundled examples: median and smallest
   speed-up, each model's own medians.
4. `perfsage.predict_many` on real-size models (the keras_zoo models repeated) with two
   workers: models per second, median over rounds.

Bytecode is compiled first and every child runs without PYTHONDONTWRITEBYTECODE, as an
installed package runs. Models come from benchmarks/keras_zoo.py (TensorFlow: test extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
TARGET = "ethos-u55-128"
DS_CNN = ROOT / "examples" / "models" / "ds_cnn_s_kws_int8.tflite"
PYTHON = sys.executable
PERFSAGE = str(Path(PYTHON).with_name("perfsage"))
#: Real models of keras_zoo timed in-process and in predict_many: small to real-size,
#: plain CNNs to attention and dense connectivity.
SPEED_MODELS = ("mlperf_kws_ds_cnn_s", "mlperf_ic_resnet8", "mobilenet_v1_0.25_128",
                "mobilenet_v2_1.0_224", "mobilenet_v3_large_1.0_224", "efficientnet_b0_224",
                "resnet50_160", "densenet121_128", "vit_tiny_32_p4", "unet_64_b16",
                "shufflenet_v2_1.0_128", "ssdlite_mnv2_0.5_160")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def child_cpu(command: list[str]) -> float:
    """CPU seconds (user + system) of one process run to completion, output discarded."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench_cli_speed: {' '.join(command)} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def paired(first: list[str], second: list[str], rounds: int) -> tuple[float, float, float]:
    """Median ratio second/first over alternating pairs, with the pairs' 10th-90th spread."""
    child_cpu(first), child_cpu(second)  # warm the page cache and the bytecode
    ratios = []
    for _ in range(rounds):
        a = child_cpu(first)
        b = child_cpu(second)
        ratios.append(b / a)
    ratios.sort()
    return (statistics.median(ratios), ratios[len(ratios) // 10],
            ratios[-1 - len(ratios) // 10])


def vela_command(model: Path, out: Path) -> list[str]:
    """The `vela` command line our ethos-u55-128 target compiles with."""
    from perfsage.targets.ethos_u import EthosU55_128
    from perfsage.targets.vela_run import config_path

    o = EthosU55_128.options
    return [str(Path(PYTHON).with_name("vela")), str(model), "--accelerator-config",
            o.accelerator_config, "--config", str(config_path(o.config)), "--system-config",
            o.system_config, "--memory-mode", o.memory_mode, "--output-dir", str(out)]


def in_process(models: list[Path], calls: int) -> list[tuple[str, float, float]]:
    """(model, perfsage ms, Vela ms) per model: medians of one call each, CPU time."""
    import perfsage
    from perfsage.targets.ethos_u import EthosU55_128
    from perfsage.targets.vela_run import run_vela

    perfsage.predict(models[0], TARGET)  # weights loaded once, as in a search loop
    rows = []
    for model in models:
        ours, theirs = [], []
        data = model.read_bytes()
        run_vela(data, EthosU55_128.options, target=TARGET)
        for i in range(calls):
            t = time.process_time()
            perfsage.predict(model, TARGET)
            ours.append(time.process_time() - t)
            if i < max(3, calls // 5):
                t = time.process_time()
                run_vela(data, EthosU55_128.options, target=TARGET)
                theirs.append(time.process_time() - t)
        rows.append((model.stem, statistics.median(ours) * 1e3,
                     statistics.median(theirs) * 1e3))
    return rows


def many(models: list[Path], count: int, rounds: int) -> list[float]:
    """Models per second of predict_many(workers=2) over ``count`` real-size models."""
    import perfsage

    paths = [models[i % len(models)] for i in range(count)]
    perfsage.predict_many(paths, TARGET, workers=2)  # workers started and kept
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        perfsage.predict_many(paths, TARGET, workers=2)
        rates.append(count / (time.perf_counter() - t))
    perfsage.close_workers()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11, help="process pairs per ratio")
    parser.add_argument("--calls", type=int, default=15, help="in-process calls per model")
    parser.add_argument("--many", type=int, default=512, help="models per predict_many call")
    args = parser.parse_args()
    import keras_zoo

    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "src")], check=True,
                   env=_env(), stdout=subprocess.DEVNULL)
    real = [keras_zoo.build(name) for name in SPEED_MODELS]
    mobilenet = keras_zoo.build("mobilenet_v2_1.0_224")
    load = os.getloadavg()[0]
    print(f"load average at start {load:.1f} on {os.cpu_count()} cores")

    predict = [PERFSAGE, "predict", "-t", TARGET]
    ratio, lo, hi = paired([PYTHON, "-c", "import numpy"], [*predict, str(DS_CNN)],
                           args.rounds)
    print(f"1. perfsage predict DS-CNN / python -c 'import numpy', CPU: median {ratio:.2f}x "
          f"(10-90 %: {lo:.2f}-{hi:.2f}, {args.rounds} pairs)  bar <= 1.5x")
    with tempfile.TemporaryDirectory() as out:
        ratio, lo, hi = paired([*predict, str(mobilenet)], vela_command(mobilenet, Path(out)),
                               args.rounds)
    print(f"2. vela / perfsage predict on MobileNetV2-224, CPU: median {ratio:.1f}x "
          f"(10-90 %: {lo:.1f}-{hi:.1f}, {args.rounds} pairs)  bar >= 4x")

    rows = in_process([*real, *sorted((ROOT / "examples" / "models").glob("*int8.tflite"))],
                      args.calls)
    print("3. in-process, one call per model (CPU ms, medians):")
    for name, ours, theirs in rows:
        print(f"   {name:34} perfsage {ours:7.2f}  vela {theirs:8.1f}  {theirs / ours:7.0f}x")
    speedups = [theirs / ours for _, ours, theirs in rows]
    print(f"   median speed-up {statistics.median(speedups):.0f}x, smallest {min(speedups):.0f}x "
          f"({len(rows)} models)  bars >= 300x median, >= 50x smallest")

    rates = many(real, args.many, 5)
    print(f"4. predict_many, workers=2, {args.many} real-size models: median "
          f"{statistics.median(rates):,.0f} models/s ({min(rates):,.0f}-{max(rates):,.0f}, "
          f"5 rounds)  bar >= 1,000")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
