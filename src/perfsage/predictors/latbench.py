"""LatBench cells as featurised graphs: the training side of ``perfsage.dataset.latbench``.

Building and featurising 15,000 float32 models takes minutes, so features and graph hashes
are cached in a folder, keyed by the cell's NAS-Bench-201 index (the same for every device
file), written after every chunk so an interrupted build resumes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perfsage.dataset.latbench import SPACE, arch_index, build, read_csv, target_name
from perfsage.predictors.features import FEATURE_VERSION, GraphFeatures
from perfsage.predictors.graphset import GraphSet, load_features, save_features
from perfsage.spaces.nasbench201 import all_archs, arch_string, parse_arch

CHUNK = 2000


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
