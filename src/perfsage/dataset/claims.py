"""Who measures what: the identity of an annotate process, and whether it still runs.

Two ``dataset annotate`` runs on one store split the work by claiming a few models at a
time in the store before measuring them (:meth:`perfsage.dataset.store.Store.claim`). A
claim names its process as ``host/pid/start``, ``start`` being the kernel's start time of
that process. On the same host a claim is dead as soon as its process is gone, a zombie,
or its pid belongs to a process started at another time (the pid was reused): a run
killed with SIGKILL is resumed by the next run at once. A claim from another host (a
store on a shared disk) cannot be checked and is trusted until its lease ends; a live run
renews its leases every time it commits labels.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` from the state on (the name may hold spaces), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (proc(5) field 22); '' off Linux."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else ""


@cache
def _host() -> str:
    return socket.gethostname()


@dataclass(frozen=True, slots=True)
class Claimant:
    """One process that claims work: its host, pid and start time."""

    host: str
    pid: int
    started: str

    @classmethod
    def this_process(cls) -> Claimant:
        """The calling process."""
        return cls(_host(), os.getpid(), _start_time(os.getpid()))

    @classmethod
    def parse(cls, text: str) -> Claimant:
        """The claimant that ``str(claimant)`` wrote."""
        host, pid, started = text.rsplit("/", 2)
        return cls(host, int(pid), started)

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.started}"

    def alive(self) -> bool | None:
        """Whether the process still runs; None when it runs on another host (unknowable)."""
        if self.host != _host():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: it exists
        fields = _stat_fields(self.pid)
        if fields is None:  # gone meanwhile; or no /proc, and the pid exists is all we know
            return not Path("/proc/self/stat").exists()
        return fields[0] != "Z" and _start_time(self.pid) == self.started
