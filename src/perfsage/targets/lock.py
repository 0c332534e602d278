"""A machine-wide reader-writer lock so timed runs never overlap another measurement.

Every measurement takes the lock; targets that time the model on this machine
(``needs_quiet_machine``) take it exclusively, all others shared. The lock lives in files
under the user's cache directory and uses ``fcntl.flock``, so it holds across processes
(pool workers, parallel ``perfsage`` commands) and the kernel drops it when a process dies,
even when a worker is killed for overrunning its time limit.

``flock`` has no writer preference: with shared holders coming and going, an exclusive
request could wait forever. A second "turnstile" lock fixes that: every request passes
through it, and a writer keeps it while waiting, so new readers queue behind the writer.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_DIR_ENV = "PERFSAGE_LOCK_DIR"


def lock_dir() -> Path:
    """Folder of the lock files: $PERFSAGE_LOCK_DIR, else $XDG_CACHE_HOME/perfsage."""
    if os.environ.get(LOCK_DIR_ENV):
        return Path(os.environ[LOCK_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "perfsage"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


@contextmanager
def machine_lock(*, exclusive: bool) -> Iterator[None]:
    """Hold the measurement lock, exclusively for timing or shared for everything else."""
    folder = lock_dir()
    turnstile = _open(folder / "measure.turnstile.lock")
    main = _open(folder / "measure.lock")
    try:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(main, fcntl.LOCK_UN)
    finally:
        os.close(main)
        os.close(turnstile)
