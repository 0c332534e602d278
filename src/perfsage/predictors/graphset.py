"""Labelled graphs for training and evaluation: features from a dataset store, plus splits.

Features depend only on a model's graph, and rebuilding 20,000 models costs minutes, so
they are cached in the dataset folder (``features-v<N>.npz``, no pickle) and computed in
parallel worker processes the first time.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfsage.dataset.store import Store
from perfsage.errors import UsageError
from perfsage.predictors.features import FEATURE_VERSION, GraphFeatures, featurize
from perfsage.spaces import get_space


@dataclass
class GraphSet:
    """Graphs with their labels for one target; arrays are row-aligned by graph."""

    graphs: list[GraphFeatures]
    labels: dict[str, np.ndarray]  # metric -> float64 [graphs]
    spaces: np.ndarray  # str [graphs]
    hashes: np.ndarray  # str [graphs]
    model_ids: np.ndarray  # int64 [graphs]
    target: str = ""  # the target whose labels these are

    def __len__(self) -> int:
        return len(self.graphs)

    def subset(self, index: np.ndarray) -> GraphSet:
        """The graphs at ``index`` (an integer or boolean array)."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        return GraphSet([self.graphs[i] for i in idx],
                        {k: v[idx] for k, v in self.labels.items()},
                        self.spaces[idx], self.hashes[idx], self.model_ids[idx], self.target)


#: A metric positive on all but at most this share of graphs is still learnt in relative
#: terms, without those graphs (:func:`without_rare_zeros`).
RARE_ZERO_SHARE = 0.01


def without_rare_zeros(data: GraphSet) -> GraphSet:
    """``data`` less the graphs whose label is 0 in a metric positive almost everywhere.

    Relative error needs positive labels. Vela reports 0 KiB of SRAM for 4 of the 26,500
    graphs of EdgeDLPerf-26k on Ethos-U65 and U85 (random graphs), and 0 for every NPU
    figure of the 43 zoo models it leaves wholly on the CPU (0.15 % of EdgeDLPerf-26k plus
    the zoo; prediction reports those as mostly-CPU instead of giving NPU figures). One such
    label would otherwise put the whole metric on an absolute log1p scale and switch its
    additive and peak readouts off. Metrics that are often 0 (``cpu_ops``) keep every graph.
    """
    keep = np.ones(len(data), dtype=bool)
    for y in data.labels.values():
        zero = y <= 0
        if 0 < zero.mean() <= RARE_ZERO_SHARE:
            keep &= ~zero
    return data if keep.all() else data.subset(keep)


def split_of(graph_hash: str) -> str:
    """Train / validation / test (80/10/10) by graph hash: a graph is in one split only."""
    bucket = int(graph_hash[:8], 16) % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


def splits(data: GraphSet, holdout_space: str | None = None) -> dict[str, np.ndarray]:
    """Boolean masks for train/val/test.

    With ``holdout_space``, the test split is every graph of that space and train/val come
    from the other spaces only (leave-one-space-out).
    """
    by_hash = np.array([split_of(h) for h in data.hashes])
    if holdout_space is None:
        return {name: by_hash == name for name in ("train", "val", "test")}
    if holdout_space not in set(data.spaces):
        raise UsageError(f"holdout space {holdout_space!r} has no labelled models; "
                         f"choose from: {', '.join(sorted(set(data.spaces)))}")
    held = data.spaces == holdout_space
    return {"train": ~held & (by_hash != "val"), "val": ~held & (by_hash == "val"),
            "test": held}


def split_sets(data: GraphSet, holdout_space: str | None = None) -> dict[str, GraphSet]:
    """The train, val and test GraphSets of :func:`splits`."""
    return {name: data.subset(mask) for name, mask in splits(data, holdout_space).items()}


def _features_of(task: tuple[str, dict]) -> GraphFeatures:
    from perfsage.graph import read_model

    space, config = task
    return featurize(read_model(get_space(space).build(config)))


def _cache_path(folder: Path) -> Path:
    return folder / f"features-v{FEATURE_VERSION}.npz"


def save_features(path: Path, ids: np.ndarray, graphs: list[GraphFeatures]) -> None:
    """Write graphs keyed by integer ``ids`` to one npz (no pickle), atomically."""
    nodes = np.array([len(g.op_types) for g in graphs])
    edges = np.array([g.edges.shape[1] for g in graphs])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=ids, n_nodes=nodes, n_edges=edges,
             op_types=np.concatenate([g.op_types for g in graphs]),
             nodes=np.concatenate([g.nodes for g in graphs]),
             edges=np.concatenate([g.edges for g in graphs], axis=1),
             globals=np.stack([g.globals for g in graphs]))
    tmp.replace(path)


def load_features(path: Path) -> dict[int, GraphFeatures]:
    """Read a :func:`save_features` file back: id -> features."""
    with np.load(path, allow_pickle=False) as z:
        ids, n_nodes, n_edges = z["ids"], z["n_nodes"], z["n_edges"]
        types, nodes, edges, glob = z["op_types"], z["nodes"], z["edges"], z["globals"]
    out = {}
    node_at = np.concatenate([[0], np.cumsum(n_nodes)])
    edge_at = np.concatenate([[0], np.cumsum(n_edges)])
    for i, model_id in enumerate(ids.tolist()):
        a, b = node_at[i], node_at[i + 1]
        out[model_id] = GraphFeatures(types[a:b], nodes[a:b], edges[:, edge_at[i]:edge_at[i + 1]],
                                      glob[i])
    return out


def features_for(folder: str | Path, rows: list[tuple[int, str, dict]], *, workers: int = 2,
                 progress: Callable[[int, int], None] | None = None) -> dict[int, GraphFeatures]:
    """Features of the models ``(id, space, config)``, from the cache or computed and cached."""
    folder = Path(folder)
    cached = load_features(_cache_path(folder)) if _cache_path(folder).exists() else {}
    todo = [r for r in rows if r[0] not in cached]
    if todo:
        tasks = [(r[1], r[2]) for r in todo]
        done: list[GraphFeatures] = []
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) if workers > 1 else _InProcess() as pool:
            for i, features in enumerate(pool.imap(_features_of, tasks, chunksize=16)):
                done.append(features)
                if progress and (i % 100 == 0 or i + 1 == len(tasks)):
                    progress(i + 1, len(tasks))
        cached.update({r[0]: f for r, f in zip(todo, done, strict=True)})
        ids = np.array(sorted(cached), dtype=np.int64)
        save_features(_cache_path(folder), ids, [cached[i] for i in ids.tolist()])
    return cached


def load_graphset(folder: str | Path, target: str, *, workers: int = 2,
                  progress: Callable[[int, int], None] | None = None) -> GraphSet:
    """Every model of the dataset with an ``ok`` label for ``target``, featurised."""
    folder = Path(folder)
    with Store(folder) as store:
        rows = store.labelled_models(target)
    if not rows:
        raise UsageError(f"{folder}: no models with '{target}' labels; run "
                         f"`perfsage dataset annotate {folder} --target {target}` first")
    cached = features_for(folder, [(r.id, r.space, r.config) for r in rows], workers=workers,
                          progress=progress)
    names = list(rows[0].metrics)
    return GraphSet(
        graphs=[cached[r.id] for r in rows],
        labels={m: np.array([r.metrics[m] for r in rows], dtype=np.float64) for m in names},
        spaces=np.array([r.space for r in rows]), hashes=np.array([r.graph_hash for r in rows]),
        model_ids=np.array([r.id for r in rows], dtype=np.int64), target=target,
    )


class _InProcess:
    """The two Pool methods load_graphset uses, run in this process."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def imap(self, fn, items, chunksize=1):  # noqa: ARG002 - Pool's signature
        return map(fn, items)
