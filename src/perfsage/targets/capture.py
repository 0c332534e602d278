"""Capture what a native library writes to stdout/stderr, at the file-descriptor level.

Vela's C++ core and TFLite Micro print straight to file descriptors 1 and 2, past Python's
``sys.stdout``, so ``contextlib.redirect_stdout`` alone misses them. This swaps both
descriptors (and Python's streams) for one temporary file for the duration of a call,
flushing C's stdio buffers on the way in and out so nothing leaks onto the terminal later.
Descriptors are process-wide: do not capture from two threads at once.
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
    with tempfile.TemporaryFile(mode="w+b") as sink:
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
