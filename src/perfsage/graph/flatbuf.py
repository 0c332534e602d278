"""A minimal read-only flatbuffer table accessor, for the reader's hot path.

The generated schema accessors go through ``flatbuffers.table.Table``, whose per-field
type checks dominate parsing time (about 13,000 calls for a MobileNetV2). This class reads
the same wire format with precompiled ``struct`` unpackers; field slots come from
``SLOTS`` below, checked against the generated schema by ``tests/graph/test_flatbuf.py``.
Out-of-range reads raise ``struct.error`` or ``ValueError``, which the reader reports as a
malformed file.
"""

from __future__ import annotations

import struct
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


class Table:
    """One flatbuffer table at ``pos`` in ``buf``; fields are looked up by vtable slot.

    The vtable is unpacked once, in one call: a table's fields are then tuple lookups,
    which is what makes reading thousands of tensors per model cheap.
    """

    __slots__ = ("buf", "pos", "vtable", "_size")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        vt = pos - _I32(buf, pos)[0]
        if vt < 0:
            raise ValueError(f"vtable offset {vt} is negative")
        self._size = _U16(buf, vt)[0]
        # (vtable size, table size, field offsets...), as far as the buffer holds them: a
        # field past the end of the buffer fails when read, as reading it alone would.
        count = min((self._size + 1) >> 1, (len(buf) - vt) >> 1)
        self.vtable: tuple[int, ...] = unpack_from(f"<{count}H", buf, vt)

    @classmethod
    def root(cls, buf: bytes) -> Table:
        """The root table of a finished buffer."""
        return cls(buf, _U32(buf, 0)[0])

    def field(self, slot: int) -> int:
        """Offset of a field from the table start, 0 when absent."""
        return self.vtable[slot >> 1] if slot < self._size else 0

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
        return unpack_from(f"<{n}{code}", self.buf, start) if n else ()

    def string(self, slot: int) -> str:
        """A string field, decoded leniently ('' when absent)."""
        start, n = self.vector(slot)
        return self.buf[start:start + n].decode("utf-8", errors="replace") if n else ""

    def inline_bytes(self) -> bytes | None:
        """The table's bytes after its vtable offset, where its scalars lie.

        None unless the vtable is whole and every field starts inside the table.
        """
        vtable = self.vtable
        if len(vtable) < 2 or len(vtable) < (self._size + 1) >> 1:
            return None
        size = vtable[1]
        if any(o >= size for o in vtable[2:]) or self.pos + size > len(self.buf):
            return None
        return self.buf[self.pos + 4:self.pos + size]
