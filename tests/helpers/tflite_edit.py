"""Edit a TFLite flatbuffer through the schema's object API, to make models no converter
would write: custom operators, out-of-range indices, cycles, empty graphs."""

from __future__ import annotations

from collections.abc import Callable

import flatbuffers
from ai_edge_litert import schema_py_generated as fb


def edit(data: bytes, change: Callable[[fb.ModelT], None]) -> bytes:
    """Unpack ``data``, let ``change`` modify the ModelT in place, pack it again."""
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    change(model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
