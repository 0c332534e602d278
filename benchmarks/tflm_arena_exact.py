"""How often the computed TFLite Micro arena equals TFLite Micro's own, to the byte.

Run: nice -n 10 .venv/bin/python benchmarks/tflm_arena_exact.py [--count 10000] [--seed 0]
         [--spaces NAME,...] [--float-every 20] [--workers 2] [--out out/tflm_arena_exact.jsonl]
         [--extra FILE.tflite ...] [--fresh] [--speed-only]

Models: ``--count`` models spread evenly over every registered search space (the ``i``-th
config of dataset seed ``--seed``, int8; every ``--float-every``-th also built in float32),
the example models, the Keras Applications cached by ``benchmarks/keras_zoo.py`` under
out/keras-zoo, and any ``--extra`` files. Each is measured by the ``cortex-m-tflm`` target
(TFLite Micro's recording allocator, in worker processes that survive its aborts) and
computed by :func:`perfsage.targets.tflm_planner.arena_bytes`. Results go to ``--out`` one
JSON line per model as they come, so a killed run resumes where it stopped (``--fresh``
starts over). Printed: the exact share per space over the models TFLM allocates, the
models the computation refuses (an operator without a rule) and the worst misses; then
the median time of one ``arena_bytes`` call (the IR already read) on models of several sizes
(``--speed-only`` prints only that).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from perfsage.errors import PerfSageError
from perfsage.graph import read_model
from perfsage.spaces import get_space, space_names
from perfsage.targets import MeasurePool
from perfsage.targets.tflm_planner import arena_bytes

ROOT = Path(__file__).resolve().parents[1]


def _files(args: argparse.Namespace) -> dict[str, Path]:
    """The real models: examples, cached Keras Applications, --extra files; by name."""
    found = {f"examples/{p.stem}": p for p in sorted((ROOT / "examples/models").glob("*.tflite"))}
    found |= {f"keras-zoo/{p.stem}": p
              for p in sorted((ROOT / "out/keras-zoo").glob("*.tflite"))}
    found |= {f"extra/{Path(p).stem}": Path(p) for p in args.extra}
    return found


def _keys(args: argparse.Namespace) -> list[tuple[str, str, int, str]]:
    """(key, space, index, dtype) of every space model, round-robin over the spaces.

    Round-robin, so a run stopped early has sampled every space evenly.
    """
    spaces = args.spaces.split(",") if args.spaces else space_names()
    per_space = max(1, args.count // len(spaces))
    keys = []
    for i in range(per_space):
        for name in spaces:
            keys.append((f"{name}/{i}/int8", name, i, "int8"))
            if args.float_every and i % args.float_every == 0:
                keys.append((f"{name}/{i}/float32", name, i, "float32"))
    return keys


def _models(args: argparse.Namespace, done: set[str], computed: dict[str, dict]
            ) -> Iterator[tuple[str, bytes]]:
    """(key, model bytes) of every model not measured yet; computes each one's arena."""
    for key, path in _files(args).items():
        if key not in done:
            data = path.read_bytes()
            computed[key] = _compute(data)
            yield key, data
    for key, space, i, dtype in _keys(args):
        if key in done:
            continue
        data = get_space(space).build(get_space(space).sample_seeded(args.seed, i), dtype=dtype)
        computed[key] = _compute(data)
        yield key, data


def _compute(data: bytes) -> dict:
    """Our arena figure for one model, or why there is none."""
    try:
        return {"computed": arena_bytes(read_model(data))}
    except PerfSageError as exc:
        return {"refused": str(exc)}


def _group(key: str) -> str:
    return key.split("/")[0] if not key.startswith(("examples/", "keras-zoo/", "extra/")) \
        else "real models"


def _report(rows: list[dict]) -> None:
    """Exact share per space, refusals, TFLM failures and the worst misses."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_group[_group(row["key"])].append(row)
    print(f"\n{'space':22} {'models':>7} {'TFLM ok':>8} {'computed':>8} {'exact':>7} "
          f"{'exact %':>8}")
    totals = [0, 0, 0, 0]
    for group in sorted(by_group):
        group_rows = by_group[group]
        measured = [r for r in group_rows if r.get("measured") is not None]
        computed = [r for r in measured if r.get("computed") is not None]
        exact = [r for r in computed if r["computed"] == r["measured"]]
        share = 100 * len(exact) / len(measured) if measured else float("nan")
        print(f"{group:22} {len(group_rows):7d} {len(measured):8d} {len(computed):8d} "
              f"{len(exact):7d} {share:7.2f}%")
        for i, n in enumerate((len(group_rows), len(measured), len(computed), len(exact))):
            totals[i] += n
    share = 100 * totals[3] / totals[1] if totals[1] else float("nan")
    print(f"{'all':22} {totals[0]:7d} {totals[1]:8d} {totals[2]:8d} {totals[3]:7d} "
          f"{share:7.2f}%")
    refused = defaultdict(int)
    for row in rows:
        if row.get("measured") is not None and row.get("refused"):
            refused[row["refused"]] += 1
    if refused:
        print("\nrefused (TFLM allocates them, no rule here):")
        for reason, n in sorted(refused.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {n:5d}  {reason}")
    failed = defaultdict(int)
    for row in rows:
        if row.get("measured") is None:
            failed[row.get("tflm_error", "")[:90]] += 1
    if failed:
        print("\nTFLM failures (not counted):")
        for reason, n in sorted(failed.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {n:5d}  {reason}")
    misses = [r for r in rows if r.get("measured") is not None and r.get("computed") is not None
              and r["computed"] != r["measured"]]
    misses.sort(key=lambda r: -abs(r["computed"] - r["measured"]) / r["measured"])
    if misses:
        print("\nworst misses (computed - measured bytes):")
        for r in misses[:15]:
            d = r["computed"] - r["measured"]
            print(f"  {r['key']:40} {r['measured']:10d} {d:+8d} ({100 * d / r['measured']:+.3f}%)")


def _speed(args: argparse.Namespace) -> None:
    """Median time of arena_bytes per model (its IR already read) on models of several sizes."""
    models = {key: path.read_bytes() for key, path in _files(args).items()}
    zoo = get_space("zoo") if "zoo" in space_names() else None
    if zoo is not None:
        for i in range(3):
            models[f"zoo/{i}"] = zoo.build(zoo.sample_seeded(args.seed, i))
    print(f"\n{'model':40} {'operators':>9} {'tensors':>8} {'median ms':>10}")
    for key, data in models.items():
        try:
            model = read_model(data)
            arena_bytes(model)
        except PerfSageError:  # unreadable, or refused: nothing to time
            continue
        times = []
        for _ in range(30):
            start = time.perf_counter()
            arena_bytes(model)
            times.append(time.perf_counter() - start)
        print(f"{key:40} {len(model.main.operators):9d} {len(model.main.tensors):8d} "
              f"{1000 * statistics.median(times):10.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000,
                        help="int8 space models in all, spread evenly over the spaces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", default="", help="comma-separated space names (all)")
    parser.add_argument("--float-every", type=int, default=20,
                        help="also build every n-th config in float32 (0: never)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "out/tflm_arena_exact.jsonl")
    parser.add_argument("--extra", nargs="*", default=[], help="more .tflite files")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results in --out")
    parser.add_argument("--speed-only", action="store_true",
                        help="only time arena_bytes on models of several sizes")
    args = parser.parse_args()
    if args.speed_only:
        _speed(args)
        return 0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        args.out.unlink(missing_ok=True)
    rows = []
    if args.out.is_file():
        for line in args.out.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
    done = {row["key"] for row in rows}
    computed: dict[str, dict] = {}
    start, n_new = time.perf_counter(), 0
    with MeasurePool(["cortex-m-tflm"], workers=args.workers, timeout_s=300) as pool, \
            args.out.open("a") as out:
        for result in pool.imap_unordered(_models(args, done, computed)):
            row = {"key": result.key, **computed.pop(result.key)}
            if result.ok:
                row["measured"] = round(result.metrics["arena_kib"] * 1024)
            else:
                row["measured"] = None
                row["tflm_error"] = result.message
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            n_new += 1
            if n_new % 200 == 0:
                ok = [r for r in rows if r.get("measured") is not None]
                exact = sum(r.get("computed") == r["measured"] for r in ok)
                print(f"{len(rows)} models ({n_new} new, {time.perf_counter() - start:.0f} s): "
                      f"{exact}/{len(ok)} exact", flush=True)
    _report(rows)
    _speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
