"""Capture what a native library writes to stdout/stderr, at the file-descriptor level.

Vela's C++ core and TFLite Micro print straight to file descriptors 1 and 2, past Python's
``sys.stdout``, so ``contextlib.redirect_stdout`` alone misses them. This swaps both
descriptors (and Python's streams) for one temporary file for the duration of a call,
flushing C's stdio buffers on the way in and out so nothing leaks onto the terminal later.
Descriptors are process-wide: do not capture from two threads at once.

When ``$PERFSAGE_CAPTURE_DIR`` is set (pool workers set it), the buffer is a named file in
that folder, so if the library kills the process mid-call, the parent can still read what it
printed last.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

_LIBC = ctypes.CDLL(None)
CAPTURE_DIR_ENV = "PERFSAGE_CAPTURE_DIR"


@dataclass
class Captured:
    """Everything written during the capture; ``text`` is filled in when the block ends."""

    text: str = ""


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    _LIBC.fflush(None)


@contextlib.contextmanager
def capture_output() -> Iterator[Captured]:
    """Send fd 1, fd 2, ``sys.stdout`` and ``sys.stderr`` to one buffer for the block."""
    result = Captured()
    python_text = io.StringIO()
    _flush_all()
    saved = [os.dup(1), os.dup(2)]
    folder = os.environ.get(CAPTURE_DIR_ENV) or None
    with tempfile.NamedTemporaryFile(mode="w+b", dir=folder, prefix="capture-") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(python_text), contextlib.redirect_stderr(python_text):
                yield result
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            native = sink.read().decode("utf-8", errors="replace")
            result.text = python_text.getvalue() + native
