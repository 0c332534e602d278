"""Read a ``.tflite`` flatbuffer into the graph IR, checking it on the way.

The flatbuffer is read through the schema's accessor API (no object-API unpacking of the
whole model, which would copy every weight), so a MobileNet-sized model parses in a few
milliseconds. Python's flatbuffers package has no verifier; instead every index is checked
against the table it points into, every vector length against the file size, and any
low-level decoding failure is turned into :class:`~perfsage.errors.ModelFileError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import ModelFileError
from perfsage.graph import schema
from perfsage.graph.ir import Model, Operator, Quantization, Subgraph, Tensor

fb = schema.fb

# What a damaged flatbuffer can raise from inside the generated accessors.
_DECODE_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError,
                  AttributeError, KeyError, RecursionError, MemoryError, UnicodeDecodeError)

_MIN_SIZE = 8  # root offset + file identifier


def read_model(source: str | PathLike[str] | bytes | bytearray | memoryview,
               *, name: str | None = None) -> Model:
    """Read a TFLite model from a path or from its bytes.

    Args:
        source: path of a ``.tflite`` file, or the file's contents.
        name: how to refer to the model in errors when ``source`` is bytes.

    Returns:
        The model as IR, validated: every index in range, every graph acyclic.

    Raises:
        ModelFileError: the file is missing or not a valid TFLite model.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label, buf = name or "<bytes>", bytes(source)
    else:
        label = str(source)
        buf = _read_file(Path(source))
    try:
        return _parse(buf, label)
    except ModelFileError:
        raise
    except _DECODE_ERRORS as exc:
        raise ModelFileError(label, f"malformed flatbuffer ({type(exc).__name__}: {exc})") from None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(path, "no such file") from None
    except IsADirectoryError:
        raise ModelFileError(path, "is a directory, not a .tflite file") from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from None


class _Checker:
    """Raises ModelFileError with the model's label; keeps range checks one-liners."""

    def __init__(self, label: str, size: int) -> None:
        self.label = label
        self.size = size

    def fail(self, problem: str) -> None:
        raise ModelFileError(self.label, problem)

    def length(self, n: int, elem_size: int, what: str) -> int:
        """A vector of n elements must fit in the file."""
        if n < 0 or n * elem_size > self.size:
            self.fail(f"{what} claims {n} entries, more than the file can hold")
        return n

    def index(self, i: int, n: int, what: str) -> int:
        if not 0 <= i < n:
            self.fail(f"{what} {i} is out of range (0..{n - 1})" if n else f"{what} {i} "
                      "refers to an empty table")
        return i


def _parse(buf: bytes, label: str) -> Model:
    check = _Checker(label, len(buf))
    if len(buf) < _MIN_SIZE:
        check.fail(f"file is {len(buf)} bytes, too short to be a TFLite model")
    if not fb.Model.ModelBufferHasIdentifier(buf, 0):
        check.fail("not a TFLite flatbuffer (no 'TFL3' file identifier)")
    root = fb.Model.GetRootAs(buf, 0)

    codes = [_opcode(root.OperatorCodes(i))
             for i in range(check.length(root.OperatorCodesLength(), 4, "operator_codes"))]
    n_buffers = check.length(root.BuffersLength(), 4, "buffers")
    buffer_data = _BufferTable(root, buf, n_buffers, check)
    n_subgraphs = check.length(root.SubgraphsLength(), 4, "subgraphs")
    if n_subgraphs == 0:
        check.fail("model has no subgraphs")
    subgraphs = [_subgraph(root.Subgraphs(i), i, codes, buffer_data, n_subgraphs, check)
                 for i in range(n_subgraphs)]
    if not subgraphs[0].operators:
        check.fail("empty graph: the main subgraph has no operators")
    description = root.Description()
    signatures = tuple(
        _text(root.SignatureDefs(i).SignatureKey())
        for i in range(check.length(root.SignatureDefsLength(), 4, "signature_defs"))
    )
    return Model(subgraphs=subgraphs, source=label, version=root.Version(),
                 description=_text(description), size_bytes=len(buf), signatures=signatures)


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", errors="replace") if raw else ""


def _opcode(code: Any) -> tuple[str, str | None, int]:
    """(builtin name, custom code, version) of one OperatorCode entry."""
    # Schema v3a moved the code to a 32-bit field; old files only fill the deprecated one.
    value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    opname = schema.BUILTIN_OPERATORS.get(value, f"UNKNOWN_BUILTIN_{value}")
    custom = _text(code.CustomCode()) if opname == "CUSTOM" else None
    return opname, custom, code.Version()


class _BufferTable:
    """Lazily resolves buffer indices to their constant bytes (zero-copy views)."""

    def __init__(self, root: Any, buf: bytes, n: int, check: _Checker) -> None:
        self.root, self.buf, self.n, self.check = root, buf, n, check
        self._cache: dict[int, np.ndarray | None] = {}

    def data(self, index: int) -> np.ndarray | None:
        if index in self._cache:
            return self._cache[index]
        self.check.index(index, self.n, "buffer index")
        b = self.root.Buffers(index)
        view: np.ndarray | None = None
        offset, size = b.Offset(), b.Size()
        if offset > 1:  # weights stored after the flatbuffer (models over 2 GB)
            if offset + size > len(self.buf):
                self.check.fail(f"buffer {index} points past the end of the file")
            view = np.frombuffer(self.buf, np.uint8, size, offset) if size else None
        elif (n := b.DataLength()) > 0:
            self.check.length(n, 1, f"buffer {index}")
            view = b.DataAsNumpy()
        self._cache[index] = view
        return view


def _ints(values: Any) -> tuple[int, ...]:
    """A generated ``...AsNumpy()`` result (array, or 0 when absent) as a tuple of ints."""
    return tuple(values.tolist()) if isinstance(values, np.ndarray) else ()


def _quantization(q: Any) -> Quantization | None:
    if q is None:
        return None
    scale = q.ScaleAsNumpy()
    if not isinstance(scale, np.ndarray) or scale.size == 0:
        return None
    zero = _ints(q.ZeroPointAsNumpy())
    axis = q.QuantizedDimension() if scale.size > 1 else None
    return Quantization(tuple(scale.tolist()), zero or (0,) * scale.size, axis)


def _tensor(t: Any, index: int, buffers: _BufferTable, check: _Checker) -> Tensor:
    check.length(t.ShapeLength(), 4, f"tensor {index} shape")
    shape = _ints(t.ShapeAsNumpy())
    if any(d < -1 for d in shape):
        check.fail(f"tensor {index} has an invalid shape {list(shape)}")
    signature = _ints(t.ShapeSignatureAsNumpy()) or None
    dtype = schema.DTYPE_NAMES.get(t.Type())
    if dtype is None:
        check.fail(f"tensor {index} has unknown type code {t.Type()}")
    return Tensor(
        index=index, name=_text(t.Name()), shape=shape, dtype=dtype,
        quantization=_quantization(t.Quantization()),
        shape_signature=signature if signature != shape else None,
        buffer=t.Buffer(), data=buffers.data(t.Buffer()),
        is_variable=bool(t.IsVariable()), is_sparse=t.Sparsity() is not None,
    )


def _plain(value: Any) -> Any:
    """Option values as plain Python: arrays -> lists, nested tables -> dicts."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return _named_fields(value)
    return value


def _named_fields(obj: Any) -> dict[str, Any]:
    """Fields of an object-API options table, snake_case names, enums by name."""
    fields: dict[str, Any] = {}
    for attr, value in vars(obj).items():
        name = schema.field_name(attr)
        names = schema.enum_field_names(name)
        if names is not None and isinstance(value, int):
            value = names.get(value, value)
        fields[name] = _plain(value)
    return fields


def _options(op: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for kind, table, lookup in ((op.BuiltinOptionsType(), op.BuiltinOptions, schema.options_class),
                                (op.BuiltinOptions2Type(), op.BuiltinOptions2,
                                 schema.options2_class)):
        cls = lookup(kind) if kind else None
        if cls is None:
            continue
        tab = table()
        if tab is not None:
            options.update(_named_fields(cls.InitFromBuf(tab.Bytes, tab.Pos)))
    return options


def _indices(values: tuple[int, ...], n: int, what: str, check: _Checker,
             optional: bool = False) -> tuple[int, ...]:
    for v in values:
        if not (optional and v == -1):
            check.index(v, n, what)
    return values


def _subgraph(g: Any, index: int, codes: list[tuple[str, str | None, int]],
              buffers: _BufferTable, n_subgraphs: int, check: _Checker) -> Subgraph:
    where = f"subgraph {index}"
    n_tensors = check.length(g.TensorsLength(), 4, f"{where} tensors")
    tensors = [_tensor(g.Tensors(i), i, buffers, check) for i in range(n_tensors)]
    operators = []
    for i in range(check.length(g.OperatorsLength(), 4, f"{where} operators")):
        op = g.Operators(i)
        opname, custom, version = codes[check.index(op.OpcodeIndex(), len(codes),
                                                    f"{where} operator {i} opcode index")]
        what = f"{where} operator {i} ({opname}) tensor index"
        check.length(op.InputsLength(), 4, what)
        check.length(op.OutputsLength(), 4, what)
        operator = Operator(
            index=i, opcode=opname, custom_code=custom, version=version,
            inputs=_indices(_ints(op.InputsAsNumpy()), n_tensors, what, check, optional=True),
            outputs=_indices(_ints(op.OutputsAsNumpy()), n_tensors, what, check),
            intermediates=_indices(_ints(op.IntermediatesAsNumpy()), n_tensors, what, check),
            options=_options(op),
        )
        for called in operator.called_subgraphs:
            check.index(called, n_subgraphs, f"{where} operator {i} ({opname}) subgraph index")
        operators.append(operator)
    inputs = _indices(_ints(g.InputsAsNumpy()), n_tensors, f"{where} input tensor", check)
    outputs = _indices(_ints(g.OutputsAsNumpy()), n_tensors, f"{where} output tensor", check)
    sub = Subgraph(index=index, name=_text(g.Name()), tensors=tensors, operators=operators,
                   inputs=inputs, outputs=outputs)
    _check_acyclic(sub, check)
    return sub


def _check_acyclic(sub: Subgraph, check: _Checker) -> None:
    """Fail on a tensor written twice or a cycle among operators (Kahn's algorithm)."""
    writer: dict[int, int] = {}
    for op in sub.operators:
        for t in op.outputs:
            if t in writer and not sub.tensors[t].is_variable:
                check.fail(f"subgraph {sub.index}: tensor {t} is written by operators "
                           f"{writer[t]} and {op.index}")
            writer.setdefault(t, op.index)
    successors: list[set[int]] = [set() for _ in sub.operators]
    indegree = [0] * len(sub.operators)
    for op in sub.operators:
        for t in op.inputs:
            p = writer.get(t)
            if p is not None and op.index not in successors[p]:
                successors[p].add(op.index)
                indegree[op.index] += 1
    ready = [i for i, d in enumerate(indegree) if d == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for j in successors[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    if seen < len(sub.operators):
        stuck = [i for i, d in enumerate(indegree) if d > 0]
        check.fail(f"subgraph {sub.index}: cyclic graph through operators {_short(stuck)}")


def _short(items: Iterable[int], limit: int = 8) -> str:
    items = list(items)
    text = ", ".join(map(str, items[:limit]))
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")
