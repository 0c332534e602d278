"""Measure many models on many targets with long-lived worker processes.

Each worker imports its tools once and then takes one (model, target) task at a time over
its own pipe, so the parent always knows which task a worker holds. A task that overruns
``timeout_s`` (Vela can hang) gets its worker killed and replaced, and comes back with status
``timeout``; a model a tool rejects comes back as ``error`` with the tool's message; a
worker that dies (a segfault in native code) is replaced and its task reported as ``error``.
The run always goes on. Workers start with the "spawn" method: no fork after threads (a
script using the pool needs the usual ``if __name__ == "__main__":`` guard). A task's time
limit runs from when it is handed to a worker, so it includes waiting for the machine lock
behind another process's cpu-litert timing.

    with MeasurePool(["ethos-u55-128", "cortex-m-tflm"], workers=2, timeout_s=60) as pool:
        for result in pool.imap_unordered((key, model_bytes) for ...):
            print(result.key, result.target, result.status, result.metrics)
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal

from perfsage.errors import MeasurementError, PerfSageError, UsageError
from perfsage.targets.capture import CAPTURE_DIR_ENV
from perfsage.targets.registry import load_class, target_path

Status = Literal["ok", "error", "timeout"]


@dataclass(slots=True)
class MeasureResult:
    """The outcome of measuring one model on one target."""

    key: Any
    target: str
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the target produced its figures."""
        return self.status == "ok"


def _worker_main(conn: Connection, spec: dict[str, tuple[str, dict]], scratch: str) -> None:
    """Worker loop: load every target once, then measure tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
    os.environ[CAPTURE_DIR_ENV] = scratch  # tool output survives a crash for the parent
    try:
        targets = {}
        for name, (path, options) in spec.items():
            targets[name] = load_class(path)(**options)
            targets[name].load()
    except BaseException as exc:  # report why instead of dying silently
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        task_id, name, model_bytes = task
        start = time.perf_counter()
        try:
            metrics, status, message = targets[name].measure(model_bytes), "ok", ""
        except MeasurementError as exc:
            metrics, status, message = {}, "error", exc.problem
        except PerfSageError as exc:
            metrics, status, message = {}, "error", str(exc)
        except Exception as exc:  # a bug or an unforeseen tool failure: report, go on
            metrics, status, message = {}, "error", f"{type(exc).__name__}: {exc}"
        conn.send((task_id, status, metrics, message, time.perf_counter() - start))


@dataclass(eq=False)
class _Task:
    task_id: int
    key: Any
    target: str
    model_bytes: bytes


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Connection
    scratch: Path
    started: float
    ready: bool = False
    task: _Task | None = None
    task_started: float = 0.0
    done: int = 0


def _last_words(scratch: Path, lines: int = 3) -> str:
    """The last lines a tool printed before its process died (from the capture files)."""
    text = "".join(p.read_text(errors="replace") for p in sorted(scratch.glob("capture-*")))
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _death(process) -> str:
    process.join(timeout=5)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class MeasurePool:
    """K worker processes measuring (model, target) pairs with a per-task time limit.

    Args:
        targets: target names (see ``perfsage targets``); each model is measured on each.
        workers: number of worker processes.
        timeout_s: per-task limit; an overrunning worker is killed and replaced.
        recycle_after: replace a worker after this many tasks (bounds leaks in the tools);
            ``None`` never recycles.
        start_timeout_s: limit for a worker to import its tools.
        target_options: per-target constructor options, e.g. ``{"cpu-litert": {"runs": 10}}``.

    Raises:
        UnknownTargetError: a name is not registered.
    """

    def __init__(self, targets: Sequence[str], *, workers: int = 2, timeout_s: float = 60.0,
                 recycle_after: int | None = 1000, start_timeout_s: float = 120.0,
                 target_options: dict[str, dict] | None = None) -> None:
        if not targets:
            raise UsageError("MeasurePool needs at least one target")
        if workers < 1 or timeout_s <= 0:
            raise UsageError("workers must be >= 1 and timeout_s > 0")
        options = target_options or {}
        self.targets = list(dict.fromkeys(targets))
        self._spec = {name: (target_path(name), dict(options.get(name, {})))
                      for name in self.targets}
        self.workers = workers
        self.timeout_s = timeout_s
        self.recycle_after = recycle_after
        self.start_timeout_s = start_timeout_s
        self._ctx = mp.get_context("spawn")
        self._pool: list[_Worker] = []
        self._ids = itertools.count()
        self._closed = False

    # -- worker lifecycle -------------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        scratch = Path(tempfile.mkdtemp(prefix="perfsage-worker-"))
        process = self._ctx.Process(target=_worker_main, args=(child, self._spec, str(scratch)),
                                    name="perfsage-measure", daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent, scratch, started=time.monotonic())

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        shutil.rmtree(worker.scratch, ignore_errors=True)

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        self._pool[self._pool.index(worker)] = self._spawn()

    def _stop(self, worker: _Worker) -> None:
        try:
            worker.conn.send(None)
        except OSError:
            pass
        worker.process.join(timeout=5)
        self._kill(worker)

    def __enter__(self) -> MeasurePool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker (killing any that does not stop within seconds)."""
        if self._closed:
            return
        self._closed = True
        for worker in self._pool:
            if worker.task is None and worker.ready:
                self._stop(worker)
            else:
                self._kill(worker)
        self._pool = []

    # -- scheduling -------------------------------------------------------------------

    def _tasks(self, models: Iterable[tuple[Any, bytes]]) -> Iterator[_Task]:
        for key, model_bytes in models:
            for name in self.targets:
                yield _Task(next(self._ids), key, name, bytes(model_bytes))

    def imap_unordered(self, models: Iterable[tuple[Any, bytes]]) -> Iterator[MeasureResult]:
        """Measure every ``(key, model_bytes)`` on every target; yield results as they come.

        The iterable is read lazily (a few tasks ahead of the workers), so it may be a
        generator over a large data set.

        Raises:
            MeasurementError: workers cannot start (a tool fails to import).
        """
        if self._closed:
            raise UsageError("this MeasurePool is closed")
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())
        source = self._tasks(models)
        queue: deque[_Task] = deque()
        exhausted = False
        try:
            while True:
                while not exhausted and len(queue) < 2 * self.workers:
                    task = next(source, None)
                    if task is None:
                        exhausted = True
                    else:
                        queue.append(task)
                for worker in self._pool:
                    if worker.ready and worker.task is None and queue:
                        task = queue.popleft()
                        worker.task, worker.task_started = task, time.monotonic()
                        worker.conn.send((task.task_id, task.target, task.model_bytes))
                if exhausted and not queue and all(w.task is None for w in self._pool):
                    return
                yield from self._poll()
        finally:
            for worker in list(self._pool):  # abandoned mid-run: drop in-flight tasks
                if worker.task is not None:
                    worker.task = None
                    self._replace(worker)

    def _poll(self) -> Iterator[MeasureResult]:
        """Wait for the next message or deadline; yield whatever results it brings."""
        now = time.monotonic()
        deadlines = [w.task_started + self.timeout_s for w in self._pool if w.task is not None]
        deadlines += [w.started + self.start_timeout_s for w in self._pool if not w.ready]
        wait_s = max(0.0, min(deadlines) - now) if deadlines else None
        ready = wait([w.conn for w in self._pool], timeout=wait_s)
        for worker in [w for w in self._pool if w.conn in ready]:
            result = self._receive(worker)
            if result is not None:
                yield result
        now = time.monotonic()
        for worker in list(self._pool):
            if worker.task is not None and now - worker.task_started > self.timeout_s:
                task, worker.task = worker.task, None
                self._replace(worker)
                yield MeasureResult(task.key, task.target, "timeout",
                                    message=f"no result within {self.timeout_s:g} s; "
                                            "worker killed and replaced",
                                    wall_s=now - worker.task_started)
            elif not worker.ready and now - worker.started > self.start_timeout_s:
                self._kill(worker)
                raise MeasurementError(", ".join(self.targets), "worker did not start within "
                                                                f"{self.start_timeout_s:g} s")

    def _receive(self, worker: _Worker) -> MeasureResult | None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            how = _death(worker.process)
            last = _last_words(worker.scratch)
            said = f"; its last output: {last}" if last else ""
            task, worker.task = worker.task, None
            if not worker.ready:
                raise MeasurementError(", ".join(self.targets),
                                       f"worker {how} while loading its tools{said}") from None
            self._replace(worker)
            if task is None:
                return None
            return MeasureResult(task.key, task.target, "error",
                                 message=f"worker {how} while measuring (replaced){said}",
                                 wall_s=time.monotonic() - worker.task_started)
        if message[0] == "fatal":
            self._kill(worker)
            raise MeasurementError(", ".join(self.targets), f"cannot load: {message[1]}")
        if message[0] == "ready":
            worker.ready = True
            return None
        task_id, status, metrics, text, wall_s = message
        task, worker.task = worker.task, None
        if task is None or task.task_id != task_id:  # cannot happen: one task per worker
            raise RuntimeError(f"result for task {task_id} from a worker not running it")
        worker.done += 1
        if self.recycle_after is not None and worker.done >= self.recycle_after:
            self._stop(worker)
            self._pool[self._pool.index(worker)] = self._spawn()
        return MeasureResult(task.key, task.target, status, metrics, text, wall_s)
