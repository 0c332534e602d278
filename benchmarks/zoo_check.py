"""Every zoo model through every tool: the acceptance check of the zoo space.

    .venv/bin/python benchmarks/zoo_check.py --seed 0 --count 200 [--jsonl out/zoo-check.jsonl]

For the first COUNT configs of a dataset seed: read with perfsage's reader, run once in
LiteRT on random input, compile with Vela for ethos-u55-128 and allocate in TFLite Micro.
Prints the failures by tool and reason, then per family the model-size (weights) and MAC
ranges, the share with at least 0.5 MB, and how many Vela runs partly on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from perfsage.graph import analyze, read_model
from perfsage.spaces import get_space
from perfsage.targets import get_target

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.litert_run import outputs_on_random_input  # noqa: E402


def _litert(data: bytes) -> list[int]:
    """Distinct values of each output after one invocation on random input."""
    return [int(np.unique(o).size) for o in outputs_on_random_input(data)]


def check(seed: int, index: int, vela, tflm) -> dict:
    """One model through the reader and the three tools; failures keep the tool's words."""
    space = get_space("zoo")
    config = space.sample_seeded(seed, index)
    data = space.build(config)
    record = {"index": index, "family": config["family"],
              "dtype": config.get("dtype", "int8"), "mb": len(data) / 2**20}
    start = time.perf_counter()
    steps = {"read": lambda: analyze(read_model(data)).macs, "litert": lambda: _litert(data),
             "vela": lambda: vela.measure(data)["cpu_ops"],
             "tflm": lambda: tflm.measure(data)["arena_kib"]}
    for name, step in steps.items():
        try:
            record[name] = step()
        except Exception as exc:  # noqa: BLE001 - every tool's failure is recorded
            record[name] = f"FAIL {type(exc).__name__}: {exc}"[:300]
    record["wall_s"] = round(time.perf_counter() - start, 2)
    return record


def summary(records: list[dict]) -> str:
    """Failures by (tool, reason), then one line per family."""
    lines = [f"{len(records)} models"]
    failures = Counter()
    for r in records:
        for tool in ("read", "litert", "vela", "tflm"):
            if isinstance(r[tool], str):
                failures[(tool, r[tool][:120])] += 1
        if isinstance(r["litert"], list) and all(n <= 1 for n in r["litert"]):
            failures[("litert", "every output one value")] += 1
    lines += [f"  {n:4d}  {tool}: {why}" for (tool, why), n in failures.most_common()]
    families = defaultdict(list)
    for r in records:
        families[r["family"]].append(r)
    lines.append(f"{'family':16s} {'n':>3s} {'model MB':>13s} {'MMAC':>15s} {'>=0.5MB':>8s} "
                 f"{'CPU ops':>8s}")
    for name, rs in sorted(families.items()):
        mb = [r["mb"] for r in rs]
        macs = [r["read"] / 1e6 for r in rs if not isinstance(r["read"], str)]
        cpu = sum(1 for r in rs if not isinstance(r["vela"], str) and r["vela"] > 0)
        lines.append(f"{name:16s} {len(rs):3d} {min(mb):5.2f}-{max(mb):6.2f} "
                     f"{min(macs):7.1f}-{max(macs):7.0f} {sum(m >= 0.5 for m in mb):8d} "
                     f"{cpu:8d}")
    n = len(records)
    on_cpu = sum(not isinstance(r["vela"], str) and r["vela"] > 0 for r in records)
    lines.append(f"share >= 0.5 MB {sum(r['mb'] >= 0.5 for r in records) / n:.1%}, float32 "
                 f"{sum(r['dtype'] == 'float32' for r in records) / n:.1%}, Vela CPU ops > 0 "
                 f"{on_cpu / n:.1%}")
    return "\n".join(lines)


def main() -> None:
    """Check COUNT models of a seed, print the summary (and keep records as JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--jsonl", type=Path)
    args = parser.parse_args()
    vela, tflm = get_target("ethos-u55-128"), get_target("cortex-m-tflm")
    records = []
    for i in range(args.count):
        records.append(check(args.seed, i, vela, tflm))
        if args.jsonl:
            with args.jsonl.open("a") as f:
                f.write(json.dumps(records[-1]) + "\n")
    print(summary(records))


if __name__ == "__main__":
    main()
