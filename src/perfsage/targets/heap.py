"""Bytes the C heap holds right now, from glibc's allocator statistics.

Resident-set growth is a poor gauge of what an interpreter allocates in a long-lived worker:
memory freed by the previous model is reused without the RSS moving. glibc's ``mallinfo2``
counts bytes handed out and not yet freed (small blocks from the arenas plus large blocks
served by ``mmap``), so the difference across a model's load is what that load allocated.
"""

from __future__ import annotations

import ctypes
import ctypes.util


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _Mallinfo2
    fn.argtypes = []
    return fn


_MALLINFO2 = _mallinfo2()


def heap_available() -> bool:
    """True when the C library reports heap statistics (glibc 2.33 or later)."""
    return _MALLINFO2 is not None


def heap_in_use() -> int:
    """Bytes currently allocated through malloc: arena blocks in use plus mmap'd blocks.

    Raises:
        RuntimeError: the C library is not glibc 2.33+ and has no ``mallinfo2``.
    """
    if _MALLINFO2 is None:
        raise RuntimeError("heap statistics need glibc 2.33 or later (mallinfo2)")
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)
