"""TFLite Micro's ``GreedyMemoryPlanner``, replayed: where each buffer of the head goes.

TFLM places the non-persistent buffers (activations and kernels' scratch buffers) one at a
time, largest first, each at the lowest offset where it fits between the buffers already
placed that are live at the same time (first fit over the placed buffers in order of
offset). The arena's head is the highest end of any placed buffer. Ties matter for
exactness: TFLM fills its sort array from the back (the last buffer added comes first) and
bubble-sorts it by descending size, which is stable, so of two buffers of one size the one
added later is placed first. Source: tensorflow/tflite-micro,
``tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc``.
"""

from __future__ import annotations

import numpy as np


def planned_peak_bytes(sizes: list[int], first: list[int], last: list[int]) -> int:
    """The head TFLM's greedy planner needs for these buffers, in bytes.

    Args:
        sizes: bytes of each buffer (already rounded up to TFLM's 16-byte alignment), in the
            order TFLM adds them to the planner.
        first: the step at which each buffer is created.
        last: the step at which each buffer is last used (inclusive).

    Returns:
        The largest ``offset + size`` of the plan (0 without buffers).
    """
    n = len(sizes)
    if n == 0:
        return 0
    size_arr = np.asarray(sizes, dtype=np.int64)
    # Placement order: the buffers reversed (TFLM fills its array from the back), then a
    # stable sort by descending size.
    reversed_ids = np.arange(n - 1, -1, -1)
    order = reversed_ids[np.argsort(-size_arr[::-1], kind="stable")]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    # Which earlier-placed buffers each buffer must avoid: live at the same time, placed
    # before it. One matrix for all pairs, then per buffer only those few are scanned.
    f, la = np.asarray(first, dtype=np.int64), np.asarray(last, dtype=np.int64)
    live_together = (f[:, None] <= la[None, :]) & (f[None, :] <= la[:, None])
    earlier = rank[None, :] < rank[:, None]
    rows, cols = np.nonzero(live_together & earlier)
    if len(rows) > _DENSE_PAIRS:
        return _place_dense(sizes, order, rows, cols)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        neighbours[i].append(j)
    offsets = [0] * n
    ends = [0] * n
    peak = 0
    for i in order.tolist():
        size = sizes[i]
        candidate = _first_fit(size, [(offsets[j], ends[j]) for j in neighbours[i]])
        offsets[i] = candidate
        ends[i] = candidate + size
        if ends[i] > peak:
            peak = ends[i]
    return peak


def _first_fit(size: int, placed: list[tuple[int, int]]) -> int:
    """The lowest offset where ``size`` bytes fit among ``placed`` (offset, end) buffers.

    TFLM walks the placed buffers in order of offset and takes the first gap, between the
    highest end so far and the next buffer's start, that holds the new one.
    """
    candidate = 0
    for offset, end in sorted(placed):
        if offset - candidate >= size:
            break
        if end > candidate:
            candidate = end
    return candidate


#: Above this many (buffer, earlier live neighbour) pairs the placement runs in NumPy, one
#: buffer at a time: graphs with long-lived tensors (unrolled recurrent cells) have tens of
#: thousands, which plain Python walks too slowly.
_DENSE_PAIRS = 20000


def _place_dense(sizes: list[int], order: np.ndarray, rows: np.ndarray, cols: np.ndarray
                 ) -> int:
    """:func:`planned_peak_bytes`'s placement with each buffer's gap search in NumPy."""
    n = len(sizes)
    bounds = np.searchsorted(rows, np.arange(n + 1)).tolist()  # rows come sorted
    offsets = np.zeros(n, dtype=np.int64)
    ends = np.zeros(n, dtype=np.int64)
    offset_list, end_list = [0] * n, [0] * n  # the same, for the short neighbour lists
    for i in order.tolist():
        size = sizes[i]
        lo, hi = bounds[i], bounds[i + 1]
        if hi - lo <= _SHORT:
            candidate = _first_fit(size, [(offset_list[j], end_list[j])
                                          for j in cols[lo:hi].tolist()])
        else:
            near = cols[lo:hi]
            by_offset = np.argsort(offsets[near], kind="stable")
            near_offsets = offsets[near][by_offset]
            # Where each gap starts: the highest end among the buffers before it (or 0).
            gap_starts = np.concatenate(([0], np.maximum.accumulate(ends[near][by_offset])))
            fits = np.flatnonzero(near_offsets - gap_starts[:-1] >= size)
            candidate = int(gap_starts[fits[0]] if fits.size else gap_starts[-1])
        offsets[i] = offset_list[i] = candidate
        ends[i] = end_list[i] = candidate + size
    return max(end_list)


_SHORT = 48  # neighbour lists up to this long are scanned in plain Python
