"""Write a resolved graph as a TFLite flatbuffer, shaped like the TFLite converter's output.

The generated schema's object API does the writing. What the converter adds beyond the
graph is reproduced here: operator versions chosen by the rules of TFLite's
``op_version.cc`` (one OperatorCode per type, at the highest version its operators need),
the ``min_runtime_version`` metadata from ``runtime_version.cc``, a ``serving_default``
signature, buffer 0 left empty and constant data aligned to 16 bytes (the schema's
``force_align``, which the Python object API does not apply by itself).
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from perfsage.builder.network import Resolved
from perfsage.graph.schema import fb

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
DESCRIPTION = "perfsage.builder"
SIGNATURE_KEY = "serving_default"
_ALIGN = 16

_TYPES = {"int8": fb.TensorType.INT8, "int32": fb.TensorType.INT32,
          "float32": fb.TensorType.FLOAT32}

#: Operator version for (int8, float32) models, as the converter writes them (TF 2.21).
_VERSIONS: dict[str, tuple[int, int]] = {
    "CONV_2D": (3, 1), "DEPTHWISE_CONV_2D": (3, 1), "FULLY_CONNECTED": (4, 1),
    "ADD": (2, 1), "MUL": (2, 1), "CONCATENATION": (2, 1), "AVERAGE_POOL_2D": (2, 1),
    "MAX_POOL_2D": (2, 1), "MEAN": (2, 1), "PAD": (2, 1), "RESIZE_BILINEAR": (3, 3),
    "RESIZE_NEAREST_NEIGHBOR": (3, 3), "DEPTH_TO_SPACE": (2, 1), "RESHAPE": (1, 1),
    "SOFTMAX": (2, 1), "LOGISTIC": (2, 1), "HARD_SWISH": (1, 1), "RELU": (2, 1),
    "RELU6": (2, 1), "SUB": (2, 1), "SQUARED_DIFFERENCE": (2, 1), "RSQRT": (2, 1),
    "TANH": (2, 1), "GELU": (2, 1), "TRANSPOSE": (2, 1), "SPLIT": (2, 1), "BATCH_MATMUL": (2, 1),
    "DEQUANTIZE": (2, 2), "QUANTIZE": (1, 1), "NEG": (1, 1), "UNPACK": (2, 1),
    "STRIDED_SLICE": (2, 1),
}

#: Oldest TFLite runtime per (operator, version), from TFLite's runtime_version.cc.
_RUNTIME = {
    ("CONV_2D", 1): "1.5.0", ("CONV_2D", 3): "1.14.0",
    ("DEPTHWISE_CONV_2D", 1): "1.5.0", ("DEPTHWISE_CONV_2D", 2): "1.12.0",
    ("DEPTHWISE_CONV_2D", 3): "1.14.0",
    ("FULLY_CONNECTED", 1): "1.5.0", ("FULLY_CONNECTED", 4): "1.14.0",
    ("FULLY_CONNECTED", 5): "2.0.0",
    ("ADD", 1): "1.5.0", ("ADD", 2): "1.14.0",
    ("MUL", 1): "1.5.0", ("MUL", 2): "1.14.0", ("MUL", 3): "1.15.0",
    ("CONCATENATION", 1): "1.5.0", ("CONCATENATION", 2): "1.14.0",
    ("AVERAGE_POOL_2D", 1): "1.5.0", ("AVERAGE_POOL_2D", 2): "1.14.0",
    ("MAX_POOL_2D", 1): "1.5.0", ("MAX_POOL_2D", 2): "1.14.0",
    ("MEAN", 1): "1.6.0", ("MEAN", 2): "1.14.0",
    ("PAD", 1): "1.5.0", ("PAD", 2): "1.14.0",
    ("RESIZE_BILINEAR", 3): "2.2.0", ("RESIZE_NEAREST_NEIGHBOR", 3): "2.3.0",
    ("DEPTH_TO_SPACE", 1): "2.1.0", ("DEPTH_TO_SPACE", 2): "2.5.0",
    ("RESHAPE", 1): "1.5.0",
    ("SOFTMAX", 1): "1.5.0", ("SOFTMAX", 2): "1.14.0",
    ("LOGISTIC", 1): "1.14.0", ("LOGISTIC", 2): "1.14.0",
    ("HARD_SWISH", 1): "1.15.0",
    ("RELU", 1): "1.5.0", ("RELU", 2): "2.1.0",
    ("RELU6", 1): "1.5.0", ("RELU6", 2): "1.14.0",
    ("SUB", 1): "1.6.0", ("SUB", 2): "1.14.0",
    ("SQUARED_DIFFERENCE", 1): "1.13.1", ("SQUARED_DIFFERENCE", 2): "2.5.0",
    ("TANH", 1): "1.14.0", ("TANH", 2): "1.14.0",
    ("GELU", 1): "2.9.0", ("GELU", 2): "2.9.0",
    ("TRANSPOSE", 1): "1.6.0", ("TRANSPOSE", 2): "1.14.0", ("TRANSPOSE", 4): "2.3.0",
    ("TRANSPOSE", 6): "2.12.0",
    ("SPLIT", 1): "1.5.0", ("SPLIT", 2): "1.14.0",
    ("BATCH_MATMUL", 1): "2.3.0", ("BATCH_MATMUL", 2): "2.3.0",
    ("DEQUANTIZE", 1): "1.13.1", ("DEQUANTIZE", 2): "1.14.0",
    ("UNPACK", 1): "1.11.0", ("UNPACK", 2): "1.14.0",
    ("STRIDED_SLICE", 1): "1.6.0", ("STRIDED_SLICE", 2): "1.14.0",
}
_RUNTIME_BYTES = 16  # the converter's fixed-size metadata buffer


class _AlignedBufferT(fb.BufferT):
    """A Buffer whose data starts on a 16-byte boundary, as the schema asks."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - generated API name
        if self.data is not None:
            builder.Prep(_ALIGN, len(self.data))
        return super().Pack(builder)


def _version(res: Resolved, op_index: int, int8: bool) -> int:
    """Version of one operator (op_version.cc), with its two data-dependent cases."""
    op = res.ops[op_index]
    version = _VERSIONS[op.opcode][0 if int8 else 1]
    if op.opcode == "MUL" and int8:
        a, b, out = (float(res.quant[i].scale[0]) for i in (*op.inputs, op.outputs[0]))
        if a * b / out >= 1.0:
            version = 3
    if op.opcode == "FULLY_CONNECTED" and op.options.keepNumDims:
        version = 5
    if op.opcode == "CONV_2D":
        if res.tensors[op.inputs[1]].shape[3] != res.tensors[op.inputs[0]].shape[3]:
            version = 6  # grouped
    if op.opcode == "TRANSPOSE":
        rank = len(res.tensors[op.inputs[0]].shape)
        version = 6 if rank > 5 else 4 if rank > 4 else version
    if op.opcode == "DEPTHWISE_CONV_2D" and not int8:
        if op.options.dilationWFactor != 1 or op.options.dilationHFactor != 1:
            version = 2
    return version


def _runtime_version(codes: list[tuple[str, int]]) -> bytes:
    """The ``min_runtime_version`` metadata: the newest runtime any operator needs."""
    versions = [_RUNTIME[c] for c in codes if c in _RUNTIME]
    newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")), default="")
    return newest.encode().ljust(_RUNTIME_BYTES, b"\0")


def _tensor(res: Resolved, i: int, buffer: int) -> fb.TensorT:
    t = res.tensors[i]
    out = fb.TensorT()
    out.shape = np.asarray(t.shape, dtype=np.int32)
    out.type = _TYPES[t.dtype]
    out.buffer = buffer
    out.name = t.name
    out.hasRank = True
    q = res.quant[i]
    if q is not None:
        out.quantization = fb.QuantizationParametersT()
        out.quantization.scale = q.scale
        out.quantization.zeroPoint = q.zero_point
        out.quantization.quantizedDimension = q.axis
    return out


def _operator(op_code_index: int, inputs: tuple[int, ...], outputs: tuple[int, ...],
              options: object | None) -> fb.OperatorT:
    out = fb.OperatorT()
    out.opcodeIndex = op_code_index
    out.inputs = np.asarray(inputs, dtype=np.int32)
    out.outputs = np.asarray(outputs, dtype=np.int32)
    if options is not None:
        out.builtinOptionsType = getattr(fb.BuiltinOptions, type(options).__name__[:-1])
        out.builtinOptions = options
    return out


def _tensor_map(names: str, indices: list[int]) -> list[fb.TensorMapT]:
    maps = []
    for n, i in enumerate(indices):
        m = fb.TensorMapT()
        m.name, m.tensorIndex = f"{names}_{n}", i
        maps.append(m)
    return maps


def serialize(res: Resolved, int8: bool) -> bytes:
    """The ``.tflite`` bytes of a resolved graph."""
    buffers = [_AlignedBufferT()]  # buffer 0: the empty sentinel every tensor may share
    tensors = []
    for i, data in enumerate(res.data):
        index = 0
        if data is not None:
            buf = _AlignedBufferT()
            buf.data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
            buffers.append(buf)
            index = len(buffers) - 1
        tensors.append(_tensor(res, i, index))

    codes: list[tuple[str, int]] = []  # (operator, version), in order of first use
    position: dict[str, int] = {}
    operators = []
    for k, op in enumerate(res.ops):
        version = _version(res, k, int8)
        if op.opcode not in position:
            position[op.opcode] = len(codes)
            codes.append((op.opcode, version))
        elif version > codes[position[op.opcode]][1]:
            codes[position[op.opcode]] = (op.opcode, version)
        operators.append(_operator(position[op.opcode], op.inputs, op.outputs, op.options))

    model = fb.ModelT()
    model.version = SCHEMA_VERSION
    model.description = DESCRIPTION
    model.operatorCodes = []
    for name, version in codes:
        code = fb.OperatorCodeT()
        code.builtinCode = getattr(fb.BuiltinOperator, name)
        code.deprecatedBuiltinCode = min(code.builtinCode,
                                         fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        code.version = version
        model.operatorCodes.append(code)

    sub = fb.SubGraphT()
    sub.tensors = tensors
    sub.inputs = np.asarray(res.inputs, dtype=np.int32)
    sub.outputs = np.asarray(res.outputs, dtype=np.int32)
    sub.operators = operators
    sub.name = "main"
    model.subgraphs = [sub]

    runtime = _AlignedBufferT()
    runtime.data = np.frombuffer(_runtime_version(codes), dtype=np.uint8)
    buffers.append(runtime)
    meta = fb.MetadataT()
    meta.name, meta.buffer = "min_runtime_version", len(buffers) - 1
    model.metadata = [meta]
    model.buffers = buffers

    sig = fb.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY
    sig.inputs = _tensor_map("input", res.inputs)
    sig.outputs = _tensor_map("output", res.outputs)
    model.signatureDefs = [sig]

    # Size the builder once: growing it copies everything written so far.
    payload = sum(len(b.data) + _ALIGN for b in buffers if b.data is not None)
    payload += sum(12 * len(q.scale) for q in res.quant if q is not None)
    builder = flatbuffers.Builder(payload + 256 * (len(tensors) + len(operators)) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(memoryview(builder.Bytes)[builder.Head():])  # one copy, not two
