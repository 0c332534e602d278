"""Minimal read-only flatbuffer accessors, for the reader's hot path.

The generated schema accessors go through ``flatbuffers.table.Table``, whose per-field
type checks dominate parsing time (about 13,000 calls for a MobileNetV2). :class:`Table`
reads the same wire format with precompiled ``struct`` unpackers, one table at a time;
:class:`Columns` reads one field of many tables at once with NumPy. Field slots come from
``SLOTS`` below, checked against the generated schema by ``tests/graph/test_flatbuf.py``.
Out-of-range reads raise ``struct.error``, ``IndexError`` or ``ValueError``, which the
reader reports as a malformed file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from struct import unpack_from

import numpy as np

_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from

SCALARS = {
    "int8": struct.Struct("<b"), "uint8": struct.Struct("<B"), "int32": struct.Struct("<i"),
    "uint32": struct.Struct("<I"), "uint64": struct.Struct("<Q"), "bool": struct.Struct("<?"),
}

#: Vtable offset of each field we read, per table (``4 + 2 * field id`` in schema.fbs).
SLOTS = {
    "Model": {"Version": 4, "OperatorCodes": 6, "Subgraphs": 8, "Description": 10,
              "Buffers": 12, "SignatureDefs": 18},
    "OperatorCode": {"DeprecatedBuiltinCode": 4, "CustomCode": 6, "Version": 8,
                     "BuiltinCode": 10},
    "SubGraph": {"Tensors": 4, "Inputs": 6, "Outputs": 8, "Operators": 10, "Name": 12},
    "Tensor": {"Shape": 4, "Type": 6, "Buffer": 8, "Name": 10, "Quantization": 12,
               "IsVariable": 14, "Sparsity": 16, "ShapeSignature": 18},
    "QuantizationParameters": {"Scale": 8, "ZeroPoint": 10, "QuantizedDimension": 16},
    "Operator": {"OpcodeIndex": 4, "Inputs": 6, "Outputs": 8, "BuiltinOptionsType": 10,
                 "BuiltinOptions": 12, "Intermediates": 20, "BuiltinOptions2Type": 26,
                 "BuiltinOptions2": 28},
    "Buffer": {"Data": 4, "Offset": 6, "Size": 8},
    "SignatureDef": {"SignatureKey": 8},
}


def _vtable(buf: bytes, vt: int) -> tuple[int, tuple[int, ...]]:
    """(declared size, entries) of the vtable at ``vt``.

    The entries are (vtable size, table size, field offsets...) as far as the buffer holds
    them: a field past the end of the buffer fails when read, as reading it alone would.
    """
    if vt < 0:
        raise ValueError(f"vtable offset {vt} is negative")
    size = _U16(buf, vt)[0]
    return size, unpack_from(f"<{min((size + 1) >> 1, (len(buf) - vt) >> 1)}H", buf, vt)


#: Compiled unpackers of short vectors by format code and length: models read hundreds of
#: vectors, of few distinct lengths, and compiling the format each time doubles the cost.
_UNPACKERS: dict[str, dict[int, Callable[[bytes, int], tuple]]] = {}


def unpack_vector(buf: bytes, start: int, n: int, code: str) -> tuple:
    """``n`` scalars of struct format ``code`` from ``start``: a tuple, () for none."""
    if not n:
        return ()
    by_length = _UNPACKERS.setdefault(code, {})
    unpack = by_length.get(n)
    if unpack is None:
        unpack = struct.Struct(f"<{n}{code}").unpack_from
        if n <= 4096:
            by_length[n] = unpack
    return unpack(buf, start)


def _field(vtable: tuple[int, tuple[int, ...]], slot: int) -> int:
    """A field's offset from its table's start per a :func:`_vtable`; 0 when absent."""
    size, entries = vtable
    return entries[slot >> 1] if slot < size else 0


class Table:
    """One flatbuffer table at ``pos`` in ``buf``; fields are looked up by vtable slot.

    The vtable is unpacked once, in one call: a table's fields are then tuple lookups,
    which is what makes reading thousands of tensors per model cheap.
    """

    __slots__ = ("buf", "pos", "_vtable")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self._vtable = _vtable(buf, pos - _I32(buf, pos)[0])

    @classmethod
    def root(cls, buf: bytes) -> Table:
        """The root table of a finished buffer."""
        return cls(buf, _U32(buf, 0)[0])

    def field(self, slot: int) -> int:
        """Offset of a field from the table start, 0 when absent."""
        return _field(self._vtable, slot)

    def scalar(self, slot: int, kind: str, default: int = 0) -> int:
        """A scalar field, or its schema default when absent."""
        o = self.field(slot)
        return SCALARS[kind].unpack_from(self.buf, self.pos + o)[0] if o else default

    def table(self, slot: int) -> Table | None:
        """A sub-table field, or None when absent."""
        o = self.field(slot)
        if not o:
            return None
        p = self.pos + o
        return Table(self.buf, p + _U32(self.buf, p)[0])

    def vector(self, slot: int) -> tuple[int, int]:
        """(start position, element count) of a vector field; (0, 0) when absent."""
        o = self.field(slot)
        if not o:
            return 0, 0
        p = self.pos + o
        p += _U32(self.buf, p)[0]
        return p + 4, _U32(self.buf, p)[0]

    def length(self, slot: int) -> int:
        """Element count of a vector field (0 when absent)."""
        return self.vector(slot)[1]

    def tables(self, slot: int) -> list[Table]:
        """A vector of tables."""
        start, n = self.vector(slot)
        buf = self.buf
        offsets = unpack_from(f"<{n}I", buf, start)
        return [Table(buf, start + 4 * i + o) for i, o in enumerate(offsets)]

    def array(self, slot: int, dtype: str) -> np.ndarray | None:
        """A vector of scalars as a zero-copy NumPy view, or None when absent."""
        if not self.field(slot):
            return None
        start, n = self.vector(slot)
        return np.frombuffer(self.buf, dtype, n, start)

    def values(self, slot: int, code: str) -> tuple:
        """A vector of scalars (struct format ``code``) as a tuple; () when absent."""
        start, n = self.vector(slot)
        return unpack_vector(self.buf, start, n, code)

    def string(self, slot: int) -> str:
        """A string field, decoded leniently ('' when absent)."""
        start, n = self.vector(slot)
        return self.buf[start:start + n].decode("utf-8", errors="replace") if n else ""


def _self_contained(vtable: tuple[int, tuple[int, ...]]) -> bool:
    """Whether a vtable is whole and every field it lists starts inside its table."""
    size, entries = vtable
    return len(entries) >= max(2, (size + 1) >> 1) and all(o < entries[1] for o in entries[2:])


class Bytes:
    """A buffer as uint8 (``u8``), and the scalars it holds at any byte position.

    ``at(dtype)[p]`` is the ``dtype`` value starting at byte ``p``: a view with a stride of
    one byte, so that reading values at any positions, aligned or not, is one NumPy lookup
    (copied out, so aligned) with a range check. The views are made once per file.
    """

    __slots__ = ("buf", "u8", "_at")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.u8 = np.frombuffer(buf, np.uint8)
        self._at: dict[str, np.ndarray] = {}

    def at(self, dtype: str) -> np.ndarray:
        """The value of ``dtype`` starting at each byte that has room for one."""
        view = self._at.get(dtype)
        if view is None:
            n = max(self.u8.size - _itemsize(dtype) + 1, 0)
            view = self._at[dtype] = np.ndarray((n,), dtype, self.u8, 0, (1,))
        return view

    def gather(self, positions: np.ndarray, dtype: str) -> np.ndarray:
        """Little-endian scalars of ``dtype`` at byte ``positions``.

        Positions are sums of unsigned offsets, never negative; one whose value would run
        past the end of the buffer raises IndexError.
        """
        return self.at(dtype)[positions]


_ITEMSIZE: dict[str, int] = {}


def _itemsize(dtype: str) -> int:
    """Bytes per element of ``dtype``, memoised (``np.dtype`` costs a microsecond a call)."""
    return _ITEMSIZE.get(dtype) or _ITEMSIZE.setdefault(dtype, np.dtype(dtype).itemsize)


def split(flat: np.ndarray, ends: list[int]) -> list[tuple]:
    """The values of ``flat`` as one tuple per table, cut at ``ends`` (see :meth:`Columns.flat`)."""
    if not flat.size:
        return [()] * len(ends)
    values = tuple(flat.tolist())  # slices of a tuple are tuples: one copy each, not two
    return [values[a:b] for a, b in zip([0, *ends], ends, strict=False)]


def _distinct(values: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(sorted distinct values, index of each value among them).

    ``np.unique(values, return_inverse=True)`` without its overheads: the values are a few
    hundred vtable positions of a handful of distinct ones, and each NumPy call counts.
    """
    distinct = sorted(set(values.tolist()))
    return distinct, np.searchsorted(np.array(distinct), values)


class Columns:
    """The tables of one vector, read a field at a time for all of them with NumPy.

    Tables written by one builder share a handful of vtables, so a field's offset is looked
    up once per distinct vtable and the values are gathered in one array operation: a few
    NumPy calls per field instead of a few Python calls per table and field. Every read is
    range-checked: one outside the buffer raises IndexError or ValueError.
    """

    __slots__ = ("buf", "data", "pos", "_vtables", "_which")

    def __init__(self, data: Bytes, positions: np.ndarray) -> None:
        self.buf, self.data, self.pos = data.buf, data, positions
        self._vtables: list[tuple[int, tuple[int, ...]]] = []
        self._which = np.zeros(0, np.intp)
        if positions.size:  # sparsity, intermediates and the like are mostly absent
            starts, self._which = _distinct(positions - data.gather(positions, "<i4"))
            self._vtables = [_vtable(self.buf, v) for v in starts]

    @classmethod
    def of(cls, parent: Table, slot: int, data: Bytes) -> Columns:
        """The tables of a vector field of ``parent`` (``data``: the same buffer's)."""
        start, n = parent.vector(slot)
        offsets_at = start + 4 * np.arange(n)  # each entry: a uoffset to its table
        return cls(data, offsets_at + data.gather(offsets_at, "<u4"))

    def __len__(self) -> int:
        return len(self.pos)

    def holds(self, slot: int) -> bool:
        """Whether any table holds the field: sparsity, intermediates and such are rare."""
        return any(_field(v, slot) for v in self._vtables)

    def _present(self, slot: int) -> tuple[np.ndarray | None, np.ndarray]:
        """(mask of tables holding the field, byte position of the field in each of those).

        The mask is None when every table holds the field, as most fields are held: callers
        then skip the masked reads and writes, a few NumPy calls per field and model.
        """
        offsets = [_field(v, slot) for v in self._vtables]
        if not any(offsets):  # intermediates, sparsity, signatures: mostly in no table
            return np.zeros(len(self), dtype=bool), np.zeros(0, dtype=np.int64)
        if all(offsets):
            if len(set(offsets)) <= 1:
                return None, self.pos + (offsets[0] if offsets else 0)
            return None, self.pos + np.array(offsets, dtype=np.int64)[self._which]
        o = np.array(offsets, dtype=np.int64)[self._which]
        present = o != 0
        return present, self.pos[present] + o[present]

    def scalars(self, slot: int, dtype: str, default: int = 0) -> np.ndarray:
        """A scalar field of every table (``default`` where absent)."""
        present, at = self._present(slot)
        if present is None:
            return self.data.gather(at, dtype)
        out = np.full(len(self), default, dtype=dtype)
        if at.size:
            out[present] = self.data.gather(at, dtype)
        return out

    def vectors(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """(first element position, length) of a vector field per table; (0, 0) if absent."""
        present, at = self._present(slot)
        u32 = self.data.at("<u4")
        if present is None:
            at = at + u32[at]
            return at + 4, u32[at].astype(np.int64)
        starts, lengths = np.zeros(len(self), np.int64), np.zeros(len(self), np.int64)
        if at.size:
            at = at + u32[at]
            starts[present], lengths[present] = at + 4, u32[at]
        return starts, lengths

    def flat(self, slot: int, dtype: str) -> tuple[np.ndarray, list[int]]:
        """A vector-of-scalars field of every table: all values in one array, and their ends.

        ``ends[i]`` is where table i's values end in the array.
        One gather for all the tables: unpacking hundreds of short vectors one by one costs
        more than all the rest of reading them. Lengths the file cannot hold raise ValueError.
        """
        if not self.holds(slot):  # nothing to read, nothing that could fail
            return np.zeros(0, dtype=dtype), [0] * len(self)
        starts, lengths = self.vectors(slot)
        width = _itemsize(dtype)
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if ends.size else 0
        if not total:
            return np.zeros(0, dtype=dtype), ends.tolist()
        if total * width > len(self.buf):
            raise ValueError(f"vectors claim {total} values, more than the file can hold")
        positions = np.repeat(starts - width * (ends - lengths), lengths)
        positions += width * np.arange(total)
        return self.data.gather(positions, dtype), ends.tolist()

    def values(self, slot: int, dtype: str) -> list[tuple]:
        """A vector-of-scalars field (NumPy ``dtype``) of every table, as tuples."""
        return split(*self.flat(slot, dtype))

    def strings(self, slot: int) -> list[str]:
        """A string field of every table, decoded leniently ('' where absent)."""
        starts, lengths = self.vectors(slot)
        buf = self.buf
        return [buf[s:s + n].decode("utf-8", errors="replace") if n else ""
                for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]

    def layouts(self) -> list[tuple[int, bytes] | None]:
        """Of every table, (vtable index, bytes after its vtable offset); see :meth:`entries`.

        For a table of scalars these say everything about its values, so they can key a
        cache of decoded tables. None unless the vtable is whole, every field starts inside
        the table and the table inside the buffer; the checks on a vtable are made once for
        all the tables that share it.
        """
        sizes = [v[1][1] if _self_contained(v) else None for v in self._vtables]
        buf, n = self.buf, len(self.buf)
        return [(w, buf[pos + 4:pos + size]) if size is not None and pos + size <= n else None
                for pos, w in zip(self.pos.tolist(), self._which.tolist(), strict=True)
                for size in (sizes[w],)]

    def entries(self, which: int) -> tuple[int, ...]:
        """The entries of a vtable, by its index in :meth:`layouts`."""
        return self._vtables[which][1]

    def tables(self, slot: int) -> tuple[np.ndarray, Columns]:
        """(mask of tables holding a sub-table in ``slot``, those sub-tables' columns)."""
        present, at = self._present(slot)
        present = np.ones(len(self), dtype=bool) if present is None else present
        return present, Columns(self.data, at + self.data.gather(at, "<u4"))
