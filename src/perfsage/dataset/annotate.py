"""`dataset annotate`: label every stored model on hardware targets, resumably.

Models lacking a label for a requested target are rebuilt from their configs (or read from
kept files) and measured by a :class:`~perfsage.targets.MeasurePool`: long-lived workers,
a per-model time limit, errors recorded and the run goes on. Labels are committed in small
transactions, so a kill loses only the measurements in flight; a second run picks up the
models still unlabelled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from perfsage.dataset.store import Store

COMMIT_EVERY_S = 1.0


@dataclass
class AnnotateSummary:
    """Counts of one annotate run, per target and status."""

    total: int = 0  # (model, target) pairs to measure in this run
    done: int = 0
    by_status: dict[str, dict[str, int]] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)  # target -> one error message

    def count(self, target: str, status: str, wall_s: float, message: str) -> None:
        """Record one finished measurement."""
        per = self.by_status.setdefault(target, {})
        per[status] = per.get(status, 0) + 1
        self.wall_s[target] = self.wall_s.get(target, 0.0) + wall_s
        if status != "ok" and message:
            self.examples.setdefault(target, message)
        self.done += 1


def missing_labels(store: Store, targets: Sequence[str]) -> dict[frozenset[str], list[int]]:
    """Model ids grouped by the set of requested targets they still lack a label for."""
    have: dict[int, set[str]] = {}
    marks = ",".join("?" * len(targets))
    for model_id, target in store.db.execute(
            f"SELECT model_id, target FROM labels WHERE target IN ({marks})", list(targets)):
        have.setdefault(model_id, set()).add(target)
    groups: dict[frozenset[str], list[int]] = {}
    # Graph-hash order is deterministic but unrelated to space or size, so a run stopped
    # early (or --limit) leaves a representative sample labelled, not one space.
    for (model_id,) in store.db.execute("SELECT id FROM models ORDER BY graph_hash"):
        missing = frozenset(targets) - have.get(model_id, set())
        if missing:
            groups.setdefault(missing, []).append(model_id)
    return groups


def annotate(folder: str | Path, targets: Sequence[str], *, workers: int = 2,
             timeout_s: float = 60.0, limit: int | None = None,
             target_options: dict[str, dict] | None = None,
             progress: Callable[[AnnotateSummary], None] | None = None) -> AnnotateSummary:
    """Measure every model of the dataset at ``folder`` that lacks a label for ``targets``.

    Args:
        folder: dataset folder.
        targets: target names; unknown names fail before any work starts.
        workers: measuring processes.
        timeout_s: per-model limit per target; an overrun is stored with status ``timeout``.
        limit: measure at most this many models in this run (None: all).
        target_options: per-target constructor options (e.g. fewer timed runs in tests).
        progress: called after each finished measurement.
    """
    from perfsage.targets import MeasurePool, get_target

    targets = list(dict.fromkeys(targets))
    info = {name: get_target(name, **(target_options or {}).get(name, {})) for name in targets}
    summary = AnnotateSummary()
    with Store(folder) as store:
        groups = missing_labels(store, targets)
        if limit is not None:
            groups = _limit(groups, limit)
        summary.total = sum(len(ids) * len(group) for group, ids in groups.items())
        if progress:
            progress(summary)
        pending: list[tuple] = []
        last_commit = time.monotonic()
        for group, ids in groups.items():
            names = [t for t in targets if t in group]
            with MeasurePool(names, workers=workers, timeout_s=timeout_s,
                             target_options=target_options) as pool:
                for result in pool.imap_unordered(_models(store, ids)):
                    target = info[result.target]
                    pending.append((
                        result.key, result.target, result.status,
                        json.dumps(result.metrics) if result.ok else None, result.message or None,
                        str(target.settings.get("tool_version", "")), target.settings_hash,
                        result.wall_s, time.time(),
                    ))
                    summary.count(result.target, result.status, result.wall_s, result.message)
                    if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                        _commit(store, pending)
                        last_commit = time.monotonic()
                    if progress:
                        progress(summary)
            _commit(store, pending)
    return summary


def _limit(groups: dict[frozenset[str], list[int]], limit: int) -> dict[frozenset[str], list[int]]:
    out, left = {}, limit
    for group, ids in groups.items():
        if left <= 0:
            break
        out[group] = ids[:left]
        left -= len(out[group])
    return out


def _models(store: Store, ids: list[int]) -> Iterator[tuple[int, bytes]]:
    for model_id in ids:
        yield model_id, store.model_bytes(model_id)


def _commit(store: Store, rows: list[tuple]) -> None:
    if not rows:
        return
    with store.transaction():
        store.db.executemany(
            "INSERT OR REPLACE INTO labels (model_id, target, status, metrics, message, "
            "tool_version, settings_hash, wall_s, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows)
    rows.clear()
