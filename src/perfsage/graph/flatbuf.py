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
    """One flatbuffer table at ``pos`` in ``buf``; fields are looked up by vtable slot."""

    __slots__ = ("buf", "pos", "_vt", "_vtlen")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self._vt = pos - _I32(buf, pos)[0]
        self._vtlen = _U16(buf, self._vt)[0]

    @classmethod
    def root(cls, buf: bytes) -> Table:
        """The root table of a finished buffer."""
        return cls(buf, _U32(buf, 0)[0])

    def _field(self, slot: int) -> int:
        return _U16(self.buf, self._vt + slot)[0] if slot < self._vtlen else 0

    def scalar(self, slot: int, kind: str, default: int = 0) -> int:
        """A scalar field, or its schema default when absent."""
        o = self._field(slot)
        return SCALARS[kind].unpack_from(self.buf, self.pos + o)[0] if o else default

    def table(self, slot: int) -> Table | None:
        """A sub-table field, or None when absent."""
        o = self._field(slot)
        if not o:
            return None
        p = self.pos + o
        return Table(self.buf, p + _U32(self.buf, p)[0])

    def vector(self, slot: int) -> tuple[int, int]:
        """(start position, element count) of a vector field; (0, 0) when absent."""
        o = self._field(slot)
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
        return [Table(buf, start + 4 * i + _U32(buf, start + 4 * i)[0]) for i in range(n)]

    def array(self, slot: int, dtype: str) -> np.ndarray | None:
        """A vector of scalars as a zero-copy NumPy view, or None when absent."""
        o = self._field(slot)
        if not o:
            return None
        start, n = self.vector(slot)
        return np.frombuffer(self.buf, dtype, n, start)

    def string(self, slot: int) -> str:
        """A string field, decoded leniently ('' when absent)."""
        start, n = self.vector(slot)
        return self.buf[start:start + n].decode("utf-8", errors="replace") if n else ""
