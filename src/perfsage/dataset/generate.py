"""`dataset generate`: sample, build and store models from a search space, in parallel.

Models are numbered by index within (space, seed); model ``i`` is always built from the
same configuration, so the job can stop anywhere and resume. A bounded window of tasks is
in flight at any time and results are stored strictly in index order, committed every
half second: a kill loses at most the window in flight, and which of two duplicate graphs
is kept never depends on timing.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from perfsage.dataset.store import ModelRecord, Store, write_model_file
from perfsage.errors import PerfSageError
from perfsage.spaces import get_space

#: A run stops when this many models in a row fail to build: the space itself is broken.
MAX_CONSECUTIVE_FAILURES = 200
WINDOW_PER_WORKER = 8  # tasks in flight per worker: keeps workers busy, bounds what a kill loses
COMMIT_EVERY_S = 0.5


class GenerateError(PerfSageError):
    """A generate run cannot make progress (every model fails to build)."""


@dataclass
class GenerateSummary:
    """What one generate run did."""

    space: str
    seed: int
    requested: int
    stored_before: int
    added: int = 0
    duplicates: int = 0
    failures: int = 0
    failure_messages: list[str] = field(default_factory=list)

    @property
    def stored(self) -> int:
        """Unique models of (space, seed) in the store after the run."""
        return self.stored_before + self.added


def make_model(task: tuple[str, int, int, str | None]) -> ModelRecord | tuple[str, int, int, str]:
    """Build and describe model ``idx`` of (space, seed); a failure is returned, not raised."""
    from perfsage.graph import analyze, read_model
    from perfsage.graph.hashing import graph_hash

    space_name, seed, idx, keep_dir = task
    try:
        space = get_space(space_name)
        config = space.sample_seeded(seed, idx)
        data = space.build(config)
        model = read_model(data, name=f"{space_name}#{idx}")
        cost = analyze(model)
    except Exception as exc:  # noqa: BLE001 - a bad sample is recorded, the run goes on
        return (space_name, seed, idx, f"{type(exc).__name__}: {exc}")
    sha = hashlib.sha256(data).hexdigest()
    file = write_model_file(Path(keep_dir), data, sha) if keep_dir else None
    return ModelRecord(space=space_name, seed=seed, idx=idx, config=config,
                       graph_hash=graph_hash(model), model_sha256=sha, bytes=len(data),
                       macs=cost.macs, params=cost.params, ops=len(model.main.operators),
                       file=file)


def _pending(done: set[int]) -> Iterator[int]:
    idx = 0
    while True:
        if idx not in done:
            yield idx
        idx += 1


def generate(folder: str | Path, space: str, count: int, seed: int = 0, workers: int = 1,
             keep_files: bool = False,
             progress: Callable[[GenerateSummary], None] | None = None) -> GenerateSummary:
    """Store ``count`` unique models of ``space`` under ``seed`` in the dataset at ``folder``.

    Runs again continue where an earlier run stopped; asking for more models than stored
    extends the set with the next indices.
    """
    get_space(space)  # fail early on an unknown name
    folder = Path(folder)
    with Store(folder, create=True) as store:
        from perfsage import __version__

        store.set_meta("perfsage_version", __version__)
        summary = GenerateSummary(space, seed, count, store.count(space, seed))
        if progress:
            progress(summary)
        indices = _pending(store.done_indices(space, seed))
        keep_dir = str(folder) if keep_files else None
        pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
        window: deque = deque()  # results in index order, oldest first
        records: list[ModelRecord] = []
        failures: list[tuple[str, int, int, str]] = []
        last_commit = time.monotonic()
        streak = 0

        def commit() -> None:
            added, dups = store.add_batch(records, failures)
            summary.added += added
            summary.duplicates += dups
            summary.failures += len(failures)
            room = 5 - len(summary.failure_messages)
            summary.failure_messages += [f[3] for f in failures][:room]
            records.clear()
            failures.clear()
            if progress:
                progress(summary)

        try:
            while True:
                # Never hand out more indices than models still needed: each one ends up
                # stored as a model, a duplicate or a failure, so reruns continue identically.
                wanted = count - summary.stored - len(records) - len(window)
                while wanted > 0 and len(window) < WINDOW_PER_WORKER * workers:
                    task = (space, seed, next(indices), keep_dir)
                    window.append(pool.apply_async(make_model, (task,)) if pool else task)
                    wanted -= 1
                if not window:
                    commit()
                    if summary.stored >= count:
                        break
                    continue
                head = window.popleft()
                result = head.get() if pool else make_model(head)
                if isinstance(result, ModelRecord):
                    records.append(result)
                    streak = 0
                else:
                    failures.append(result)
                    streak += 1
                    if streak >= MAX_CONSECUTIVE_FAILURES:
                        commit()
                        raise GenerateError(f"{space}: the last {streak} models all failed to "
                                            f"build; stopping. Last error: {result[3]}")
                if time.monotonic() - last_commit >= COMMIT_EVERY_S or not window:
                    commit()
                    last_commit = time.monotonic()
        finally:
            if pool:
                pool.terminate()
    return summary
