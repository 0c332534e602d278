"""Progress for long jobs: a live Rich bar on a terminal, plain periodic lines in logs.

Rich draws nothing until the end when stderr is not a terminal (CI logs, nohup), so there
the reporter prints one line every few seconds with the count, rate and ETA instead.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from perfsage.cli import format as fmt

LOG_EVERY_S = 10.0


class Reporter:
    """One job's progress: ``update(done, total, note)``; use as a context manager."""

    def __init__(self, description: str, unit: str) -> None:
        self.description, self.unit = description, unit
        self.live = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.first_done: int | None = None
        self.last_line = 0.0
        self.state = (0, None, "")

    def __enter__(self) -> Reporter:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                TextColumn("{task.fields[note]}"),
                                console=fmt.console(stderr=True))
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=None, rate="", note="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.bar.__exit__(*exc)
        elif exc[0] is None:  # a failed job says why, not how far it got
            self._line(force=True)

    def _rate(self, done: int) -> float | None:
        if self.first_done is None:
            self.first_done = done
        elapsed = time.perf_counter() - self.start
        gained = done - self.first_done
        return gained / elapsed if elapsed > 0 and gained > 0 else None

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        """Record progress; draws the bar or prints a line when one is due."""
        self.state = (done, total, note)
        rate = self._rate(done)
        if self.live:
            self.bar.update(self.task, completed=done, total=total, note=note,
                            rate=f"{rate:.1f} {self.unit}/s" if rate else "")
        elif time.perf_counter() - self.last_line >= LOG_EVERY_S:
            self._line()

    def _line(self, force: bool = False) -> None:
        done, total, note = self.state
        rate = self._rate(done)
        parts = [f"{self.description}: {done}" + (f"/{total}" if total else "")]
        if rate:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if total and done < total:
                parts.append(f"ETA {timedelta(seconds=round((total - done) / rate))}")
        if note:
            parts.append(note)
        print(", ".join(parts), file=sys.stderr, flush=True)
        self.last_line = time.perf_counter()
