"""Run the `perfsage` command as a user does: to completion, or killed mid-job with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path


def perfsage(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``perfsage ARGS`` in a new process; output captured as text."""
    return subprocess.run([sys.executable, "-m", "perfsage", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def kill_when(args: list[str], database: Path, count_sql: str, at_least: int) -> None:
    """Start ``perfsage ARGS``; kill -9 it and its workers when ``count_sql`` >= ``at_least``.

    Polls until the count is reached or the job ends on its own (then the caller's checks
    see a finished job): no clock, so a slow machine only makes the wait longer.
    """
    proc = subprocess.Popen([sys.executable, "-m", "perfsage", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            try:
                with sqlite3.connect(database, timeout=5) as db:
                    if db.execute(count_sql).fetchone()[0] >= at_least:
                        break
            except sqlite3.Error:  # the job has not created its tables yet
                continue
        with suppress(ProcessLookupError):  # a job that ended on its own is gone already
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
