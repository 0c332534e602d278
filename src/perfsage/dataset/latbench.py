"""LatBench: measured latencies of NAS-Bench-201 cells on real devices (BRP-NAS, NeurIPS 2020).

Each CSV row is a cell (``arch_str`` and its ``arch_vector``) with a mean latency in seconds
measured on one device. Our ``nasbench201`` space builds the same networks (LatBench's
macro skeleton, see ``perfsage.spaces.nasbench201``), so every predictor can be trained and
scored on real measurements instead of simulator labels, with BRP-NAS's protocol: 900
random models to train, 100 to validate, the rest to test (:func:`draws`).

Building and featurising 15,000 float32 models takes minutes, so features and graph hashes
are cached in a folder, keyed by the cell's NAS-Bench-201 index (the same for every device
file), written after every chunk so an interrupted build resumes.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from perfsage.errors import UsageError
from perfsage.predictors.features import FEATURE_VERSION, GraphFeatures
from perfsage.predictors.graphset import GraphSet, load_features, save_features
from perfsage.spaces.nasbench201 import OPS, all_archs, arch_string, parse_arch

COLUMNS = ("arch_str", "arch_vector", "latency_s")
SPACE = "nasbench201"
#: BRP-NAS's latency-predictor protocol: train and validation sizes; the rest is test.
TRAIN, VAL = 900, 100
#: Weights do not change the graph; one seed keeps builds reproducible.
WEIGHT_SEED = 0
CHUNK = 2000


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


def _featurize(task: tuple[str, str]) -> tuple[GraphFeatures, str]:
    """Features and structural hash of one cell (runs in a worker process)."""
    from perfsage.graph import read_model
    from perfsage.graph.hashing import graph_hash
    from perfsage.predictors.features import featurize

    model = read_model(build(*task))
    return featurize(model), graph_hash(model)


def _cache_files(folder: Path, dtype: str) -> tuple[Path, Path]:
    stem = f"latbench-{dtype}-v{FEATURE_VERSION}"
    return folder / f"{stem}-features.npz", folder / f"{stem}-hashes.npz"


def _load_cache(folder: Path, dtype: str) -> tuple[dict[int, GraphFeatures], dict[int, str]]:
    """Cached features and hashes; empty when missing or built by a different builder."""
    feature_file, hash_file = _cache_files(folder, dtype)
    if not (feature_file.exists() and hash_file.exists()):
        return {}, {}
    with np.load(hash_file, allow_pickle=False) as z:
        hashes = dict(zip(z["ids"].tolist(), z["hashes"].tolist(), strict=True))
    if hashes:
        # A builder change alters graphs without touching FEATURE_VERSION: spot-check one.
        probe = min(hashes)
        if _featurize((all_archs()[probe], dtype))[1] != hashes[probe]:
            return {}, {}
    features = load_features(feature_file)
    return features, {i: h for i, h in hashes.items() if i in features}


def _save_cache(folder: Path, dtype: str, features: dict[int, GraphFeatures],
                hashes: dict[int, str]) -> None:
    feature_file, hash_file = _cache_files(folder, dtype)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.array(sorted(features), dtype=np.int64)
    save_features(feature_file, ids, [features[i] for i in ids.tolist()])
    tmp = hash_file.with_suffix(".tmp.npz")
    np.savez(tmp, ids=ids, hashes=np.array([hashes[i] for i in ids.tolist()]))
    tmp.replace(hash_file)


def featurize_archs(archs: list[str], cache_dir: str | Path, *, dtype: str = "float32",
                    workers: int = 2, progress: Callable[[int, int], None] | None = None
                    ) -> tuple[list[GraphFeatures], list[str]]:
    """Features and graph hashes of ``archs``, built in worker processes and cached.

    The cache is saved every ``CHUNK`` models, so a killed build loses one chunk at most.
    """
    folder = Path(cache_dir)
    index = arch_index()
    ids = [index[arch_string(parse_arch(a))] for a in archs]
    features, hashes = _load_cache(folder, dtype)
    todo = sorted(set(ids) - set(features))
    if todo:
        names = all_archs()
        pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
        mapper = pool.imap if pool else map
        try:
            for start in range(0, len(todo), CHUNK):
                part = todo[start:start + CHUNK]
                tasks = [(names[i], dtype) for i in part]
                kwargs = {"chunksize": 16} if pool else {}
                for k, (i, (graph, digest)) in enumerate(
                        zip(part, mapper(_featurize, tasks, **kwargs), strict=True)):
                    features[i], hashes[i] = graph, digest
                    if progress and (k % 100 == 0 or k + 1 == len(part)):
                        progress(start + k + 1, len(todo))
                _save_cache(folder, dtype, features, hashes)
        finally:
            if pool:
                pool.terminate()
    return [features[i] for i in ids], [hashes[i] for i in ids]


def target_name(path: str | Path) -> str:
    """The label target of a LatBench file, e.g. ``latbench-desktop-cpu-core-i7-7820x-fp32``."""
    return f"latbench-{Path(path).stem}"


def load_latbench(path: str | Path, cache_dir: str | Path, *, dtype: str = "float32",
                  limit: int | None = None, workers: int = 2,
                  progress: Callable[[int, int], None] | None = None) -> GraphSet:
    """A LatBench CSV as a GraphSet with label ``latency_ms``.

    Args:
        path: the LatBench CSV.
        cache_dir: folder for the cached features (created).
        dtype: the precision the device ran (LatBench's desktop CPU file: float32).
        limit: only the first ``limit`` rows (tests, quick looks).
        workers: build processes.
        progress: called with (done, total) while building.

    Returns:
        Rows in file order; ``model_ids`` are NAS-Bench-201 indices (see :func:`arch_index`),
        ``hashes`` structural graph hashes (cells that build the same graph share one).
    """
    archs, latency_ms = read_csv(path)
    archs, latency_ms = archs[:limit], latency_ms[:limit]
    graphs, hashes = featurize_archs(archs, cache_dir, dtype=dtype, workers=workers,
                                     progress=progress)
    index = arch_index()
    return GraphSet(graphs=graphs, labels={"latency_ms": latency_ms},
                    spaces=np.full(len(archs), SPACE), hashes=np.array(hashes),
                    model_ids=np.array([index[a] for a in archs], dtype=np.int64),
                    target=target_name(path))


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
