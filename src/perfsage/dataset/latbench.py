"""LatBench: measured latencies of NAS-Bench-201 cells on real devices (BRP-NAS, NeurIPS 2020).

Each CSV row is a cell (``arch_str`` and its ``arch_vector``) with a mean latency in seconds
measured on one device. Our ``nasbench201`` space builds the same networks (LatBench's
macro skeleton, see ``perfsage.spaces.nasbench201``), so every predictor can be trained and
scored on real measurements instead of simulator labels, with BRP-NAS's protocol: 900
random models to train, 100 to validate, the rest to test (:func:`draws`).

This module reads and checks the files and builds the cells; turning them into featurised
graphs for training is the predictors' side (``perfsage.predictors.latbench``), so the
dataset package never depends on how predictors see a graph.
"""

from __future__ import annotations

import csv
import math
import re
from functools import cache
from pathlib import Path

import numpy as np

from perfsage.errors import UsageError
from perfsage.spaces.nasbench201 import OPS, all_archs, arch_string, parse_arch

COLUMNS = ("arch_str", "arch_vector", "latency_s")
SPACE = "nasbench201"
#: BRP-NAS's latency-predictor protocol: train and validation sizes; the rest is test.
TRAIN, VAL = 900, 100
#: Weights do not change the graph; one seed keeps builds reproducible.
WEIGHT_SEED = 0


def read_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Canonical arch strings and latencies in ms of a LatBench CSV, checked row by row.

    Raises:
        UsageError: one line naming the file (and row) when the file is missing, lacks a
            column, or a row has a bad arch string, an ``arch_vector`` that disagrees with
            it, a non-positive latency or a repeated cell.
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UsageError(f"{path}: not a LatBench CSV; missing column(s) "
                                 f"{', '.join(missing)} (expected {', '.join(COLUMNS)})")
            rows = [(reader.line_num, r) for r in reader]
    except OSError as e:
        raise UsageError(f"{path}: cannot read LatBench CSV ({e.strerror or e})") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: not a LatBench CSV ({e})") from e
    if not rows:
        raise UsageError(f"{path}: LatBench CSV has a header but no rows")
    archs, latency, seen = [], [], {}
    for line, row in rows:
        arch = _checked_arch(row, f"{path}:{line}")
        if arch in seen:
            raise UsageError(f"{path}:{line}: cell {arch} repeats line {seen[arch]}")
        seen[arch] = line
        archs.append(arch)
        latency.append(_checked_latency(row["latency_s"], f"{path}:{line}") * 1000)
    return archs, np.array(latency, dtype=np.float64)


def _checked_arch(row: dict[str, str], where: str) -> str:
    """The canonical arch string of a row whose ``arch_vector`` agrees with ``arch_str``."""
    try:
        ops = parse_arch(row["arch_str"] or "")
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    vector = re.findall(r"\d", row["arch_vector"] or "")
    expected = [str(OPS.index(op)) for op in ops]
    if vector != expected:
        raise UsageError(f"{where}: arch_vector {row['arch_vector']!r} disagrees with "
                         f"arch_str {row['arch_str']!r} (expected {''.join(expected)})")
    return arch_string(ops)


def _checked_latency(text: str | None, where: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{where}: latency_s {text!r} is not a positive number of seconds")
    return value


@cache
def arch_index() -> dict[str, int]:
    """Arch string -> NAS-Bench-201 index (0..15624), the cache key of a cell."""
    return {arch: i for i, arch in enumerate(all_archs())}


def config_of(arch: str) -> dict:
    """The ``nasbench201`` config that builds cell ``arch``."""
    return {"arch": arch_string(parse_arch(arch)), "seed": WEIGHT_SEED}


def build(arch: str, dtype: str = "float32") -> bytes:
    """The .tflite bytes of cell ``arch`` in LatBench's skeleton (float32, as measured)."""
    from perfsage.spaces import get_space

    return get_space(SPACE).build(config_of(arch), dtype=dtype)


def target_name(path: str | Path) -> str:
    """The label target of a LatBench file, e.g. ``latbench-desktop-cpu-core-i7-7820x-fp32``."""
    return f"latbench-{Path(path).stem}"


def draws(n: int, seed: int, train: int = TRAIN, val: int = VAL) -> dict[str, np.ndarray]:
    """BRP-NAS's split of ``n`` models: ``train`` random ones, then ``val``, the rest test.

    Raises:
        UsageError: when fewer than ``train + val + 1`` models are available.
    """
    if n <= train + val:
        raise UsageError(f"{n} models: need more than {train} + {val} for a test set")
    order = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(order[:train]), "val": np.sort(order[train:train + val]),
            "test": np.sort(order[train + val:])}
