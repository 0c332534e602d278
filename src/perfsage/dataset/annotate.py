"""`dataset annotate`: label every stored model on hardware targets, resumably, in parallel.

Models lacking a label for a requested target are rebuilt from their configs (or read from
kept files) and measured by a :class:`~perfsage.targets.MeasurePool`: long-lived workers,
a per-model time limit, errors recorded and the run goes on. Labels are committed in small
transactions, so a kill loses only the measurements in flight; a second run picks up the
models still unlabelled.

Runs share a store by claiming work: a run claims a few models at a time
(:meth:`Store.claim <perfsage.dataset.store.Store.claim>`), skipping models that are
labelled or claimed by a live run, so two processes on one store split the models instead
of both measuring all of them. A claim of a process that died (kill -9 included) is taken
over at once; one from another host when its lease ends (see :mod:`perfsage.dataset.claims`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from perfsage.dataset.claims import Claimant
from perfsage.dataset.store import Label, Store

if TYPE_CHECKING:
    from perfsage.targets import Target
    from perfsage.targets.pool import MeasureResult

COMMIT_EVERY_S = 1.0
#: Models claimed per measuring process at a time: enough to keep the pool's read-ahead
#: fed, few enough that a second run finds work left to share.
CLAIM_PER_WORKER = 2
#: A claim lasts at least this long without a commit renewing it (and at least four
#: per-model time limits), before another host's run may take it over.
CLAIM_LEASE_S = 600.0


@dataclass
class AnnotateSummary:
    """Counts of one annotate run, per target and status."""

    total: int = 0  # (model, target) pairs this run expects to measure
    done: int = 0
    elsewhere: int = 0  # pairs other live runs were measuring when this run last looked
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


def missing_labels(store: Store, targets: Sequence[str], *,
                   claimed: Collection[tuple[int, str]] = ()) -> dict[frozenset[str], list[int]]:
    """Model ids grouped by the set of requested targets they still lack a label for.

    The (model, target) pairs in ``claimed`` (say, those live runs are measuring) count
    as labelled.
    """
    have = store.labelled_targets(targets)
    for model_id, target in claimed:
        have.setdefault(model_id, set()).add(target)
    groups: dict[frozenset[str], list[int]] = {}
    # Graph-hash order is deterministic but unrelated to space or size, so a run stopped
    # early (or --limit) leaves a representative sample labelled, not one space.
    for model_id in store.model_ids_by_hash():
        missing = frozenset(targets) - have.get(model_id, set())
        if missing:
            groups.setdefault(missing, []).append(model_id)
    return groups


def annotate(folder: str | Path, targets: Sequence[str], *, workers: int = 2,
             timeout_s: float = 60.0, limit: int | None = None,
             target_options: dict[str, dict] | None = None,
             progress: Callable[[AnnotateSummary], None] | None = None) -> AnnotateSummary:
    """Measure every model of the dataset at ``folder`` that lacks a label for ``targets``.

    Models another live run is measuring are left to it.

    Args:
        folder: dataset folder.
        targets: target names; unknown names fail before any work starts.
        workers: measuring processes.
        timeout_s: per-model limit per target; an overrun is stored with status ``timeout``.
        limit: measure at most this many models in this run (None: all).
        target_options: per-target constructor options (e.g. fewer timed runs in tests).
        progress: called as each round of claiming starts and after each finished
            measurement.
    """
    from perfsage.targets import get_target

    targets = list(dict.fromkeys(targets))
    info = {name: get_target(name, **(target_options or {}).get(name, {})) for name in targets}
    with Store(folder) as store:
        run = _Run(store, info, max(CLAIM_LEASE_S, 4 * timeout_s), progress)
        try:
            # Rounds: a model skipped because another run claimed some of its targets comes
            # back in the next round with the targets still free; a round that measured
            # nothing leaves nothing this run can do.
            while run.round(workers, timeout_s, limit, target_options):
                pass
        finally:
            run.commit()
            store.release_claims(run.me)
    return run.summary


def _limit(groups: dict[frozenset[str], list[int]], limit: int) -> dict[frozenset[str], list[int]]:
    out, left = {}, limit
    for group, ids in groups.items():
        if left <= 0:
            break
        out[group] = ids[:left]
        left -= len(out[group])
    return out


class _Run:
    """One annotate run's claims, pending labels and counts."""

    def __init__(self, store: Store, info: dict[str, Target], lease_s: float,
                 progress: Callable[[AnnotateSummary], None] | None) -> None:
        self.store, self.info, self.lease_s, self.progress = store, info, lease_s, progress
        self.settings = {name: t.settings_hash for name, t in info.items()}
        self.me = Claimant.this_process()
        self.summary = AnnotateSummary()
        self.claimed = 0  # models claimed so far (what --limit bounds)
        self.pending: list[Label] = []
        self.last_commit = time.monotonic()

    def round(self, workers: int, timeout_s: float, limit: int | None,
              target_options: dict[str, dict] | None) -> bool:
        """Claim and measure the work free now; True when it measured anything."""
        from perfsage.targets import MeasurePool

        claimed = self.store.live_claims(list(self.info))  # by other runs: this one holds none
        self.summary.elsewhere = len(claimed)
        groups = missing_labels(self.store, list(self.info), claimed=claimed)
        if limit is not None:
            groups = _limit(groups, limit - self.claimed)
        done_before = self.summary.done
        self.summary.total = done_before + sum(len(ids) * len(g) for g, ids in groups.items())
        if self.progress:
            self.progress(self.summary)
        for group, ids in groups.items():
            names = [t for t in self.info if t in group]
            with MeasurePool(names, workers=workers, timeout_s=timeout_s,
                             target_options=target_options) as pool:
                batch = CLAIM_PER_WORKER * workers
                for result in pool.imap_unordered(self._claimed(ids, names, batch)):
                    self.record(result)
        self.commit()
        return self.summary.done > done_before

    def _claimed(self, ids: list[int], names: list[str], batch: int
                 ) -> Iterator[tuple[int, bytes]]:
        """(id, bytes) of the models of ``ids`` this run claims, ``batch`` at a time."""
        free = iter(ids)
        while True:
            claimed, passed = self.store.claim(free, names, self.me, count=batch,
                                               settings_hashes=self.settings,
                                               lease_s=self.lease_s)
            self.summary.total -= passed * len(names)  # labelled or claimed meanwhile
            self.claimed += len(claimed)
            if not claimed:
                return
            for model_id in claimed:
                yield model_id, self.store.model_bytes(model_id)

    def record(self, result: MeasureResult) -> None:
        """Keep one measurement; commit when the last commit is old enough."""
        target = self.info[result.target]
        self.pending.append(Label(
            result.key, result.target, result.status, result.metrics if result.ok else None,
            result.message or None, str(target.settings.get("tool_version", "")),
            target.settings_hash, result.wall_s, measured_by=str(self.me)))
        self.summary.count(result.target, result.status, result.wall_s, result.message)
        if time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
            self.commit()
        if self.progress:
            self.progress(self.summary)

    def commit(self) -> None:
        """Write the pending labels, release their claims and renew the others' leases."""
        self.store.write_labels(self.pending, claimant=self.me, lease_s=self.lease_s)
        self.pending.clear()
        self.last_commit = time.monotonic()
