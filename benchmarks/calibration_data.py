"""Calibration graphs for the prediction intervals: features, notes and labels, cached.

The intervals (``perfsage.predictors.intervals``) are calibrated on graphs the shipped
weights never trained on: the hash-based test split of EdgeDLPerf-26k (task spaces and
random graphs) and the zoo of real architectures. Rebuilding and reading a model costs
20-160 ms, so each graph's features and the kinds of its notes (Vela's CPU fallback per
Ethos-U target) are computed once and cached under ``--cache`` (NumPy files, no pickle);
a killed run resumes from the last save.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfsage.dataset.store import DatasetError, Store
from perfsage.predictors.features import GraphFeatures, featurize
from perfsage.predictors.graphset import load_features, save_features, split_of
from perfsage.predictors.intervals import NOTE_KINDS

ETHOS_U = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")
TARGETS = (*ETHOS_U, "cortex-m-tflm")
SAVE_EVERY = 200


@dataclass
class Labelled:
    """One target's calibration graphs, row-aligned."""

    graphs: list[GraphFeatures]
    notes: list[list[str]]  # note kinds per graph (for this target)
    labels: dict[str, np.ndarray]
    groups: np.ndarray  # str: "task", "random", "zoo"
    units: np.ndarray  # str: held out together in cross-validation (zoo family, hash fold)
    names: np.ndarray  # str: space or zoo family

    def __len__(self) -> int:
        return len(self.graphs)

    def subset(self, index: np.ndarray) -> Labelled:
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        return Labelled([self.graphs[i] for i in idx], [self.notes[i] for i in idx],
                        {k: v[idx] for k, v in self.labels.items()}, self.groups[idx],
                        self.units[idx], self.names[idx])


def _note_bits(model) -> np.ndarray:
    """Per Ethos-U target, a bit per NOTE_KINDS kind Vela's placement gives ``model``."""
    from perfsage.targets.vela_support import model_notes

    bits = np.zeros(len(ETHOS_U), dtype=np.int64)
    for note in model_notes(model, ETHOS_U):
        if note.kind not in NOTE_KINDS:
            continue
        where = [ETHOS_U.index(note.target)] if note.target in ETHOS_U else range(len(ETHOS_U))
        for t in where:
            bits[t] |= 1 << NOTE_KINDS.index(note.kind)
    return bits


def collect(cache: Path, rows: dict[int, str], model_bytes: Callable[[int], bytes],
            log: Callable[[str], None] = print) -> tuple[dict[int, GraphFeatures], dict]:
    """Features and note bits of the models ``rows`` (id -> graph hash), cached in ``cache``.

    The cache (``.npz`` and ``.notes.npz``) keys each model by id and keeps its graph hash:
    a dataset regenerated under the same ids is read again, never mixed up.
    """
    from perfsage.graph import read_model

    feats_path, notes_path = cache.with_suffix(".npz"), cache.with_suffix(".notes.npz")
    feats = load_features(feats_path) if feats_path.exists() else {}
    bits: dict[int, np.ndarray] = {}
    if notes_path.exists():
        with np.load(notes_path) as z:
            bits = {i: b for i, b, h in zip(z["ids"].tolist(), z["bits"], z["hashes"].tolist(),
                                            strict=True) if rows.get(i, h) == h}
    feats = {i: f for i, f in feats.items() if i in bits}
    todo = [i for i in sorted(rows) if i not in bits]
    start = time.time()

    def save() -> None:
        keys = np.array(sorted(bits), dtype=np.int64)
        save_features(feats_path, keys, [feats[i] for i in keys.tolist()])
        tmp = notes_path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=keys, bits=np.stack([bits[i] for i in keys.tolist()]),
                 hashes=np.array([rows.get(i, "") for i in keys.tolist()]))
        tmp.replace(notes_path)

    skipped = 0
    for n, model_id in enumerate(todo, 1):
        try:
            data = model_bytes(model_id)
        except DatasetError:  # rebuilds to other bytes than were measured: not this model
            skipped += 1
            continue
        model = read_model(data)
        feats[model_id], bits[model_id] = featurize(model), _note_bits(model)
        if n % SAVE_EVERY == 0:
            save()
            log(f"{cache.name}: {n}/{len(todo)} models read, {time.time() - start:.0f} s")
    if todo:
        save()
        log(f"{cache.name}: {len(todo)} models read ({skipped} no longer rebuild to the bytes "
            f"measured: left out), {time.time() - start:.0f} s")
    return {i: feats[i] for i in rows if i in feats}, {i: bits[i] for i in rows if i in bits}


def _kinds(bits: int) -> list[str]:
    return [k for i, k in enumerate(NOTE_KINDS) if bits >> i & 1]


def _fold(graph_hash: str, folds: int) -> int:
    return int(graph_hash[8:16], 16) % folds


def edl_ids(dataset: Path, *, limit: int | None, seed: int = 0) -> dict[int, str]:
    """Test-split models of EdgeDLPerf-26k labelled for any target (subsampled to ``limit``).

    The zoo's models, where the dataset holds them, are not among them (:func:`zoo_ids`).
    Returns id -> graph hash.
    """
    with Store(dataset) as store:
        rows = {r.id: r.graph_hash for t in TARGETS for r in store.labelled_models(t)
                if r.space != "zoo"}
    ids = sorted(i for i, h in rows.items() if split_of(h) == "test")
    if limit is not None and len(ids) > limit:
        ids = sorted(np.random.default_rng(seed).choice(ids, limit, replace=False).tolist())
    return {i: rows[i] for i in ids}


def labelled(dataset: Path, target: str, feats: dict[int, GraphFeatures], bits: dict,
             *, zoo: bool, folds: int = 5) -> Labelled:
    """``target``'s labelled graphs among the cached ones; groups by space, units for CV."""
    with Store(dataset) as store:
        rows = [r for r in store.labelled_models(target) if r.id in feats and r.id in bits]
    if not rows:
        return Labelled([], [], {}, np.array([], dtype=str), np.array([], dtype=str),
                        np.array([], dtype=str))
    metrics = list(rows[0].metrics)
    t = ETHOS_U.index(target) if target in ETHOS_U else None
    if zoo:
        names = [r.config.get("family", "zoo") for r in rows]
        groups = ["zoo"] * len(rows)
        units = [f"zoo:{n}" for n in names]
    else:
        names = [r.space for r in rows]
        groups = ["random" if r.space == "random-graphs" else "task" for r in rows]
        units = [f"fold:{_fold(r.graph_hash, folds)}" for r in rows]
    return Labelled(
        graphs=[feats[r.id] for r in rows],
        notes=[_kinds(int(bits[r.id][t])) if t is not None else [] for r in rows],
        labels={m: np.array([r.metrics[m] for r in rows], dtype=np.float64) for m in metrics},
        groups=np.array(groups), units=np.array(units), names=np.array(names))


def merge(parts: list[Labelled]) -> Labelled:
    """Concatenate several targets' Labelled sets (metrics common to all)."""
    parts = [p for p in parts if len(p)]
    metrics = [m for m in parts[0].labels if all(m in p.labels for p in parts)]
    return Labelled([g for p in parts for g in p.graphs], [n for p in parts for n in p.notes],
                    {m: np.concatenate([p.labels[m] for p in parts]) for m in metrics},
                    np.concatenate([p.groups for p in parts]),
                    np.concatenate([p.units for p in parts]),
                    np.concatenate([p.names for p in parts]))


def zoo_ids(dataset: Path, *, test_only: bool = False) -> dict[int, str]:
    """Zoo models labelled for any target: id -> graph hash.

    ``test_only``: only the hash-based test split, for weights trained on the zoo's other
    models (a model trained on is no calibration graph).
    """
    with Store(dataset) as store:
        return {r.id: r.graph_hash for t in TARGETS
                for r in store.labelled_models(t, space="zoo")
                if not test_only or split_of(r.graph_hash) == "test"}


def train_ids(dataset: Path, *, limit: int, seed: int = 0) -> dict[int, str]:
    """A sample of the training split (the reference statistics): id -> graph hash."""
    with Store(dataset) as store:
        rows = {r.id: r.graph_hash for r in store.labelled_models(TARGETS[0])}
    ids = sorted(i for i, h in rows.items() if split_of(h) == "train")
    pick = np.random.default_rng(seed).choice(ids, min(limit, len(ids)), replace=False)
    return {i: rows[i] for i in sorted(pick.tolist())}


def dump_json(path: Path, data: object) -> None:
    """Write ``data`` as JSON atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
