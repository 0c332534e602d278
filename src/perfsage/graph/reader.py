"""Read a ``.tflite`` flatbuffer into the graph IR, checking it on the way.

Tables are read with the small accessors in :mod:`perfsage.graph.flatbuf` (weights stay
zero-copy views into the file), and builtin options through the schema's generated object
API, so every option table of the schema is understood without a hand-written list.
Python's flatbuffers package has no verifier; instead every index is checked against the
table it points into, every vector length against the file size, and any low-level
decoding failure is turned into :class:`~perfsage.errors.ModelFileError`.

A subgraph's tensors and operators are read column-wise, all at once, with NumPy; when
that meets anything unusual they are read again one table at a time, which names the first
problem exactly. Both ways give the same IR: ``tests/predictors/test_prediction_numbers.py``
pins it.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from itertools import starmap
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import ModelFileError
from perfsage.graph import schema
from perfsage.graph.flatbuf import SLOTS, Bytes, Columns, Table, split
from perfsage.graph.ir import SUBGRAPH_OPTION_SUFFIX as _SUBGRAPH_FIELD
from perfsage.graph.ir import (
    Model,
    Operator,
    Quantization,
    Subgraph,
    Tensor,
    TensorSizes,
    dtype_bits,
    element_count,
)

# What a damaged flatbuffer can raise from inside the generated accessors.
_DECODE_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError,
                  AttributeError, KeyError, RecursionError, MemoryError, UnicodeDecodeError)

_MIN_SIZE = 8  # root offset + file identifier
_IDENTIFIER = b"TFL3"

# Field slots read once per tensor or operator, bound to names for the hot loops.
_SG_TENSORS, _SG_OPERATORS = SLOTS["SubGraph"]["Tensors"], SLOTS["SubGraph"]["Operators"]
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_INTERMEDIATES = (SLOTS["Operator"][f] for f in (
    "OpcodeIndex", "Inputs", "Outputs", "Intermediates"))
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_NAME, _T_QUANTIZATION, _T_VARIABLE, _T_SPARSITY, \
    _T_SIGNATURE = (SLOTS["Tensor"][f] for f in (
        "Shape", "Type", "Buffer", "Name", "Quantization", "IsVariable", "Sparsity",
        "ShapeSignature"))
_Q_SCALE, _Q_ZERO, _Q_AXIS = (SLOTS["QuantizationParameters"][f]
                              for f in ("Scale", "ZeroPoint", "QuantizedDimension"))
_OPTION_UNIONS = (
    (SLOTS["Operator"]["BuiltinOptionsType"], SLOTS["Operator"]["BuiltinOptions"],
     schema.options_class),
    (SLOTS["Operator"]["BuiltinOptions2Type"], SLOTS["Operator"]["BuiltinOptions2"],
     schema.options2_class),
)


Source = str | PathLike[str] | bytes | bytearray | memoryview


def read_model(source: Source | mmap.mmap, *, name: str | None = None,
               details: bool = True) -> Model:
    """Read a TFLite model from a path or from its bytes.

    Args:
        source: path of a ``.tflite`` file, or the file's contents (a map from
            :func:`mapped` is read in place, not copied).
        name: how to refer to the model in errors when ``source`` is bytes.
        details: False leaves every tensor's name empty and its quantization None, which
            cost and feature analysis never look at: a third less reading time. The file
            is checked all the same.

    Returns:
        The model as IR, validated: every index in range, every graph acyclic.

    Raises:
        ModelFileError: the file is missing or not a valid TFLite model.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label, buf = name or "<bytes>", bytes(source)
    elif isinstance(source, mmap.mmap):
        label, buf = name or "<bytes>", source
    else:
        label = str(source)
        buf = _read_file(Path(source))
    try:
        return _parse(buf, label, details)
    except ModelFileError:
        raise
    except _DECODE_ERRORS as exc:
        raise ModelFileError(label, f"malformed flatbuffer ({type(exc).__name__}: {exc})") from None


@contextmanager
def mapped(source: Source) -> Iterator[tuple[bytes | mmap.mmap, str | None]]:
    """(contents, name for read_model) of a model file, memory-mapped rather than read.

    Reading a model with ``details=False`` touches its tables but never its weights, most
    of the file: mapped, those pages are not copied at all. Bytes pass through unchanged
    (name None); a file that cannot be mapped (empty, a pipe) is read, and a missing one
    raises ModelFileError as :func:`read_model` would. The map closes on leaving the block
    unless a model read from it is still alive, whose arrays then keep it open.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield source, None
        return
    try:
        with open(source, "rb") as file:
            view = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        yield _read_file(Path(source)), str(source)
        return
    try:
        yield view, str(source)
    finally:
        with suppress(BufferError):  # still viewed: closed when the last view goes
            view.close()


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

    def tables(self, parent: Table, slot: int, what: str) -> list[Table]:
        """A vector of sub-tables whose claimed length fits in the file."""
        self.length(parent.length(slot), 4, what)
        return parent.tables(slot)

    def index(self, i: int, n: int, what: str) -> int:
        if not 0 <= i < n:
            self.fail(f"{what} {i} is out of range (0..{n - 1})" if n else f"{what} {i} "
                      "refers to an empty table")
        return i


@dataclass(slots=True)
class _File:
    """What reading one file shares: its bytes (also as arrays), checker and tables."""

    buf: bytes
    data: Bytes
    check: _Checker
    codes: list[tuple[str, str | None, int]]
    buffers: _BufferTable
    n_subgraphs: int = 0
    details: bool = True  # tensor names and quantisation


def _parse(buf: bytes, label: str, details: bool = True) -> Model:
    check = _Checker(label, len(buf))
    if len(buf) < _MIN_SIZE:
        check.fail(f"file is {len(buf)} bytes, too short to be a TFLite model")
    if buf[4:8] != _IDENTIFIER:
        check.fail("not a TFLite flatbuffer (no 'TFL3' file identifier)")
    root = Table.root(buf)
    slot = SLOTS["Model"]

    data = Bytes(buf)
    codes = [_opcode(c) for c in check.tables(root, slot["OperatorCodes"], "operator_codes")]
    buffers = _buffer_table(root, buf, check, data)
    graphs = check.tables(root, slot["Subgraphs"], "subgraphs")
    if not graphs:
        check.fail("model has no subgraphs")
    f = _File(buf, data, check, codes, buffers, len(graphs), details)
    subgraphs = [_subgraph(g, i, f) for i, g in enumerate(graphs)]
    if not subgraphs[0].operators:
        check.fail("empty graph: the main subgraph has no operators")
    signatures = tuple(s.string(SLOTS["SignatureDef"]["SignatureKey"])
                       for s in check.tables(root, slot["SignatureDefs"], "signature_defs"))
    return Model(subgraphs=subgraphs, source=label, version=root.scalar(slot["Version"], "uint32"),
                 description=root.string(slot["Description"]), size_bytes=len(buf),
                 signatures=signatures)


def _opcode(code: Table) -> tuple[str, str | None, int]:
    """(builtin name, custom code, version) of one OperatorCode entry."""
    slot = SLOTS["OperatorCode"]
    # Schema v3a moved the code to a 32-bit field; old files only fill the deprecated one.
    value = max(code.scalar(slot["BuiltinCode"], "int32"),
                code.scalar(slot["DeprecatedBuiltinCode"], "int8"))
    opname = schema.BUILTIN_OPERATORS.get(value, f"UNKNOWN_BUILTIN_{value}")
    custom = code.string(slot["CustomCode"]) if opname == "CUSTOM" else None
    return opname, custom, code.scalar(slot["Version"], "int32", default=1)


#: Where a buffer's bytes are: (offset, size) after the flatbuffer, or (start, length) of its
#: data vector inside it; Buffer.offset > 1 tells which.
_Place = tuple[int, int, int, int]


class _BufferTable:
    """Resolves buffer indices to their constant bytes (zero-copy views), each once.

    ``places`` holds where every buffer lies (offsets, sizes, data starts and lengths, one
    array each) when they could all be read at once; without it each buffer's table is
    read when a tensor first asks, naming any problem in it.
    """

    def __init__(self, positions: list[int], buf: bytes, data: np.ndarray, check: _Checker,
                 places: tuple[np.ndarray, ...] | None = None) -> None:
        self.positions, self.buf, self.bytes, self.check = positions, buf, data, check
        self.places = places
        self._cache: dict[int, np.ndarray | None] = {}

    def data(self, index: int) -> np.ndarray | None:
        if index in self._cache:
            return self._cache[index]
        self.check.index(index, len(self.positions), "buffer index")
        offset, size, start, length = (
            tuple(int(column[index]) for column in self.places) if self.places is not None
            else _place(Table(self.buf, self.positions[index])))
        if offset > 1:  # weights stored after the flatbuffer (models over 2 GB)
            start, length = offset, size
        if start + length > len(self.buf):
            self.check.fail(f"buffer {index} points past the end of the file")
        # A slice of the file's uint8 view: a third of the cost of a new np.frombuffer.
        view = self.bytes[start:start + length] if length else None
        self._cache[index] = view
        return view

    def data_of(self, indices: list[int]) -> list[np.ndarray | None]:
        """:meth:`data` of each index; the buffers not seen yet are placed all at once."""
        cache = self._cache
        new = [i for i in dict.fromkeys(indices) if i not in cache]
        if new:
            views = self._placed(new)
            if views is None:  # anything unusual: one at a time, failing as data() does
                views = [self.data(i) for i in new]
            cache.update(zip(new, views, strict=True))
        return [cache[i] for i in indices]

    def _placed(self, indices: list[int]) -> list[np.ndarray | None] | None:
        """The views of buffers in the data vectors they all have, else None.

        None for any index out of range, any buffer stored after the flatbuffer or past the
        end of the file: :meth:`data` handles those, and names the problems.
        """
        if self.places is None or max(indices) >= len(self.positions):
            return None
        offsets, _, starts, lengths = (column[indices] for column in self.places)
        ends = starts + lengths
        if (offsets > 1).any() or ends.max() > len(self.buf):
            return None
        u8 = self.bytes
        return [u8[a:b] if a < b else None
                for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


_B_OFFSET, _B_SIZE, _B_DATA = (SLOTS["Buffer"][f] for f in ("Offset", "Size", "Data"))


def _place(b: Table) -> _Place:
    """Where one buffer's bytes lie (its data vector is not read for an offset buffer)."""
    offset, size = b.scalar(_B_OFFSET, "uint64"), b.scalar(_B_SIZE, "uint64")
    return (offset, size, 0, 0) if offset > 1 else (offset, size, *b.vector(_B_DATA))


def _buffer_table(root: Table, buf: bytes, check: _Checker, data: Bytes) -> _BufferTable:
    """The model's buffers: all placed at once, or left to be read one by one."""
    slot = SLOTS["Model"]["Buffers"]
    check.length(root.length(slot), 4, "buffers")
    try:
        cols = Columns.of(root, slot, data)
        places = (cols.scalars(_B_OFFSET, "<u8"), cols.scalars(_B_SIZE, "<u8"),
                  *cols.vectors(_B_DATA))
        return _BufferTable(cols.pos.tolist(), buf, data.u8, check, places)
    except _DECODE_ERRORS:
        return _BufferTable([t.pos for t in root.tables(slot)], buf, data.u8, check)


class _Unusual(Exception):
    """The column-wise reader met something it leaves to the table-by-table reader."""


def _at_once(at_once: Callable[[], Any], one_by_one: Callable[[], Any]) -> Any:
    """``at_once()``, or ``one_by_one()`` where that meets anything unusual or broken."""
    try:
        return at_once()
    except (_Unusual, ModelFileError, *_DECODE_ERRORS):
        return one_by_one()


def _quantization(q: Table | None) -> Quantization | None:
    if q is None:
        return None
    scale = q.values(_Q_SCALE, "f")  # float32 widened to Python floats, exactly
    if not scale:
        return None
    zero = q.values(_Q_ZERO, "q")
    axis = q.scalar(_Q_AXIS, "int32") if len(scale) > 1 else None
    return Quantization(scale, zero or (0,) * len(scale), axis)


def _tensor(t: Table, index: int, f: _File) -> Tensor:
    check = f.check
    check.length(t.length(_T_SHAPE), 4, f"tensor {index} shape")
    shape = t.values(_T_SHAPE, "i")
    if shape and min(shape) < -1:
        check.fail(f"tensor {index} has an invalid shape {list(shape)}")
    signature = t.values(_T_SIGNATURE, "i") or None
    type_code = t.scalar(_T_TYPE, "int8")
    dtype = schema.DTYPE_NAMES.get(type_code)
    if dtype is None:
        check.fail(f"tensor {index} has unknown type code {type_code}")
    buffer = t.scalar(_T_BUFFER, "uint32")
    name, quantization = t.string(_T_NAME), _quantization(t.table(_T_QUANTIZATION))
    return Tensor(
        index=index, name=name if f.details else "", shape=shape, dtype=dtype,
        quantization=quantization if f.details else None,
        shape_signature=signature if signature != shape else None,
        buffer=buffer, data=f.buffers.data(buffer),
        is_variable=bool(t.scalar(_T_VARIABLE, "bool")),
        is_sparse=t.table(_T_SPARSITY) is not None,
    )


def _tensors(g: Table, where: str, f: _File) -> tuple[list[Tensor], TensorSizes | None]:
    """Every tensor of a subgraph, and their sizes when reading column-wise gave them."""
    f.check.length(g.length(_SG_TENSORS), 4, f"{where} tensors")
    return _at_once(
        lambda: _tensors_at_once(Columns.of(g, _SG_TENSORS, f.data), f),
        lambda: ([_tensor(t, i, f) for i, t in enumerate(g.tables(_SG_TENSORS))], None))


def _tensors_at_once(cols: Columns, f: _File) -> tuple[list[Tensor], TensorSizes | None]:
    """What :func:`_tensor` reads, a field at a time across all tensors, and their sizes.

    Raises _Unusual rather than judge anything :func:`_tensor` would reject.
    """
    flat, ends = cols.flat(_T_SHAPE, "<i4")
    if flat.size and flat.min() < -1:
        raise _Unusual
    shapes = split(flat, ends)
    codes = cols.scalars(_T_TYPE, "<i1")
    dtypes = _dtype_names()[codes.view(np.uint8)].tolist()
    if None in dtypes:
        raise _Unusual
    variable = (cols.scalars(_T_VARIABLE, "u1") != 0).tolist()
    sparse = _sparse(cols)
    buffers = cols.scalars(_T_BUFFER, "<u4").tolist()
    data = f.buffers.data_of(buffers)
    # Each tensor's fields positionally, in Tensor's field order: per tensor, keywords or a
    # comprehension unpacking the zip cost more than starmap.
    tensors = list(starmap(Tensor, zip(
        range(len(cols)), _names(cols, f.details), shapes, dtypes,
        _quantizations(cols, f.details), _signatures(cols, shapes), buffers, data, variable,
        sparse, strict=True)))
    constant = [d is not None for d in data]
    return tensors, _sizes(tensors, shapes, codes, constant, sparse)


@cache
def _dtype_names() -> np.ndarray:
    """Dtype name by type code read as uint8 (None where unknown, negative codes included)."""
    names = np.full(256, None, dtype=object)
    for code in range(-128, 128):  # every int8 code, at its uint8 reading
        names[code & 0xFF] = schema.DTYPE_NAMES.get(code)
    return names


def _sparse(cols: Columns) -> list[bool]:
    """Whether each tensor has sparsity parameters (read, and so checked, where it does)."""
    if not cols.holds(_T_SPARSITY):
        return [False] * len(cols)
    return cols.tables(_T_SPARSITY)[0].tolist()


def _signatures(cols: Columns, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...] | None]:
    """Each tensor's shape signature, None where absent, empty or the same as its shape."""
    return [sig if sig and sig != shape else None
            for sig, shape in zip(cols.values(_T_SIGNATURE, "<i4"), shapes, strict=True)]


@cache
def _bits_by_code() -> np.ndarray:
    """Bits per element of each TFLite type code, as :attr:`Tensor.bits` gives them."""
    table = np.zeros(max(schema.DTYPE_NAMES) + 1, dtype=np.int64)
    for code, name in schema.DTYPE_NAMES.items():
        table[code] = dtype_bits(name)
    return table


def _sizes(tensors: list[Tensor], shapes: list[tuple[int, ...]], codes: np.ndarray,
           constant: list[bool], sparse: list[bool]) -> TensorSizes:
    """:class:`TensorSizes` of freshly read tensors, from the columns they were read from.

    Element counts come memoised per shape, bits by type code and bytes in one NumPy
    expression: a few calls in all, where the properties take a few per tensor.
    """
    elements = list(map(element_count, shapes))  # Python ints, however large
    bits = _bits_by_code()[codes]
    if max(elements, default=0) < 2**55:  # elements x bits then fits in 64 bits
        nbytes = ((np.array(elements, dtype=np.int64) * bits + 7) // 8).tolist()
    else:
        nbytes = [t.nbytes for t in tensors]
    if any(sparse):
        for i in [i for i, (s, c) in enumerate(zip(sparse, constant, strict=True)) if s and c]:
            nbytes[i] = tensors[i].nbytes  # stored compressed: its bytes in the file
    return TensorSizes(elements, bits.tolist(), nbytes, constant)


def _names(cols: Columns, details: bool) -> list[str]:
    """Each tensor's name; '' without details, though where they lie is read all the same."""
    if details:
        return cols.strings(_T_NAME)
    cols.vectors(_T_NAME)
    return [""] * len(cols)


def _quantizations(cols: Columns, details: bool) -> list[Quantization | None]:
    """Each tensor's quantisation, as :func:`_quantization` reads it.

    Without details, all None, after the same reads and range checks.
    """
    present, q = cols.tables(_T_QUANTIZATION)
    if not details:
        for slot, width in ((_Q_SCALE, 4), (_Q_ZERO, 8)):
            starts, lengths = q.vectors(slot)
            if (starts + width * lengths > len(cols.buf)).any():
                raise _Unusual
        q.scalars(_Q_AXIS, "<i4")
        return [None] * len(cols)
    made = iter([
        Quantization(scale, zero or (0,) * len(scale), axis if len(scale) > 1 else None)
        if scale else None
        for scale, zero, axis in zip(q.values(_Q_SCALE, "<f4"), q.values(_Q_ZERO, "<i8"),
                                     q.scalars(_Q_AXIS, "<i4").tolist(), strict=True)
    ])
    return [next(made) if p else None for p in present.tolist()]


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


@cache
def _scalars_only(cls: type) -> bool:
    """True when every field of an options class is a scalar (no vectors, strings, tables)."""
    return all(isinstance(v, (int, float)) for v in vars(cls()).values())


#: Decoded scalar-only option tables by (class, vtable, inline bytes); models repeat a few.
_OPTIONS_CACHE: dict[tuple, dict[str, Any]] = {}
_OPTIONS_CACHE_LIMIT = 4096


def _option_fields(cls: type, buf: bytes, pos: int,
                   layout: tuple[tuple[int, ...], bytes] | None) -> dict[str, Any]:
    """One options table as named fields, from the cache when its bytes were seen before.

    A table of scalars is wholly described by its ``layout`` (vtable and inline bytes), so
    equal layouts decode to equal fields; anything else goes through the object API.
    """
    if layout is None or not _scalars_only(cls):
        return _named_fields(cls.InitFromBuf(buf, pos))
    key = (cls, *layout)
    fields = _OPTIONS_CACHE.get(key)
    if fields is None:
        if len(_OPTIONS_CACHE) >= _OPTIONS_CACHE_LIMIT:
            _OPTIONS_CACHE.clear()
        fields = _OPTIONS_CACHE[key] = _named_fields(cls.InitFromBuf(buf, pos))
    return dict(fields)


def _options(op: Table) -> dict[str, Any]:
    """Builtin options (both unions) as named fields, via the schema's object API."""
    options: dict[str, Any] = {}
    for type_slot, table_slot, lookup in _OPTION_UNIONS:
        kind = op.scalar(type_slot, "uint8")
        cls = lookup(kind) if kind else None
        table = op.table(table_slot) if cls is not None else None
        if table is not None:
            options.update(_option_fields(cls, table.buf, table.pos, table.layout()))
    return options


@cache
def _names_subgraphs(cls: type) -> bool:
    """True when an options class has a field naming a subgraph (WHILE, IF, CALL_ONCE...)."""
    return any(schema.field_name(a).endswith(_SUBGRAPH_FIELD) for a in vars(cls()))


def _options_at_once(cols: Columns) -> tuple[list[dict[str, Any]], list[int]]:
    """What :func:`_options` reads, for every operator, and which of them can call subgraphs.

    Only those operators' subgraph indices need checking: the others' options have no
    field that names one.
    """
    options: list[dict[str, Any]] = [{} for _ in range(len(cols))]
    callers: list[int] = []
    for type_slot, table_slot, lookup in _OPTION_UNIONS:
        if cols.holds(type_slot):  # else all NONE, as the second union mostly is
            _union_at_once(cols, type_slot, table_slot, lookup, options, callers)
    return options, callers


def _union_at_once(cols: Columns, type_slot: int, table_slot: int,
                   lookup: Callable[[int], type | None], options: list[dict[str, Any]],
                   callers: list[int]) -> None:
    """Add one union's options to each operator's, and list those that can call subgraphs.

    A model repeats a few option tables (its 3x3 convolutions, its ADDs): a table of
    scalars, known by its member, vtable and inline bytes, is decoded once per model.
    """
    kinds = cols.scalars(type_slot, "u1").tolist()
    classes = {k: lookup(k) for k in set(kinds) if k}
    if not any(classes.values()):
        return
    present, tables = cols.tables(table_slot)
    decoded: dict[tuple, dict[str, Any]] = {}
    for i, pos, found in zip(np.flatnonzero(present).tolist(), tables.pos.tolist(),
                             tables.layouts(), strict=True):
        cls = classes.get(kinds[i])
        if cls is None:
            continue
        if found is None or not _scalars_only(cls):
            fields = _option_fields(cls, cols.buf, pos, None)
        else:
            key = (cls, *found)
            fields = decoded.get(key)
            if fields is None:
                layout = (tables.entries(found[0]), found[1])
                fields = decoded[key] = _option_fields(cls, cols.buf, pos, layout)
        options[i].update(fields)
        if _names_subgraphs(cls):
            callers.append(i)


def _indices(t: Table, slot: int, n: int, what: str, check: _Checker,
             optional: bool = False) -> tuple[int, ...]:
    check.length(t.length(slot), 4, what)
    values = t.values(slot, "i")
    if values and (min(values) < (-1 if optional else 0) or max(values) >= n):
        for v in values:  # name the first bad index
            if not (optional and v == -1):
                check.index(v, n, what)
    return values


def _indices_at_once(cols: Columns, slot: int, n: int, optional: bool = False) -> list[tuple]:
    """What :func:`_indices` reads, for every table; _Unusual for anything it would reject."""
    flat, ends = cols.flat(slot, "<i4")
    if flat.size and (flat.min() < (-1 if optional else 0) or flat.max() >= n):
        raise _Unusual
    return split(flat, ends)


def _operator(op: Table, i: int, where: str, n_tensors: int, f: _File) -> Operator:
    check = f.check
    opcode_index = op.scalar(_OP_OPCODE, "uint32")
    opname, custom, version = f.codes[check.index(opcode_index, len(f.codes),
                                                  f"{where} operator {i} opcode index")]
    what = f"{where} operator {i} ({opname}) tensor index"
    operator = Operator(
        index=i, opcode=opname, custom_code=custom, version=version,
        inputs=_indices(op, _OP_INPUTS, n_tensors, what, check, optional=True),
        outputs=_indices(op, _OP_OUTPUTS, n_tensors, what, check),
        intermediates=_indices(op, _OP_INTERMEDIATES, n_tensors, what, check),
        options=_options(op),
    )
    for called in operator.called_subgraphs:
        check.index(called, f.n_subgraphs, f"{where} operator {i} ({opname}) subgraph index")
    return operator


def _operators(g: Table, where: str, n_tensors: int, f: _File) -> list[Operator]:
    """Every operator of a subgraph."""
    f.check.length(g.length(_SG_OPERATORS), 4, f"{where} operators")
    return _at_once(
        lambda: _operators_at_once(Columns.of(g, _SG_OPERATORS, f.data), n_tensors, f),
        lambda: [_operator(op, i, where, n_tensors, f)
                 for i, op in enumerate(g.tables(_SG_OPERATORS))])


def _operators_at_once(cols: Columns, n_tensors: int, f: _File) -> list[Operator]:
    """What :func:`_operator` reads, a field at a time across all operators."""
    opcodes = cols.scalars(_OP_OPCODE, "<u4").tolist()
    if opcodes and max(opcodes) >= len(f.codes):
        raise _Unusual
    options, callers = _options_at_once(cols)
    codes = [f.codes[c] for c in opcodes]  # (name, custom code, version) of each operator
    # Positionally, in Operator's field order (see _tensors_at_once).
    operators = list(starmap(Operator, zip(
        range(len(cols)), [c[0] for c in codes],
        _indices_at_once(cols, _OP_INPUTS, n_tensors, optional=True),
        _indices_at_once(cols, _OP_OUTPUTS, n_tensors), options, [c[1] for c in codes],
        [c[2] for c in codes], _indices_at_once(cols, _OP_INTERMEDIATES, n_tensors),
        strict=True)))
    if any(not 0 <= s < f.n_subgraphs for i in callers for s in operators[i].called_subgraphs):
        raise _Unusual
    return operators


def _subgraph(g: Table, index: int, f: _File) -> Subgraph:
    where = f"subgraph {index}"
    slot = SLOTS["SubGraph"]
    tensors, sizes = _tensors(g, where, f)
    n_tensors = len(tensors)
    sub = Subgraph(
        index=index, name=g.string(slot["Name"]), tensors=tensors,
        operators=_operators(g, where, n_tensors, f),
        inputs=_indices(g, slot["Inputs"], n_tensors, f"{where} input tensor", f.check),
        outputs=_indices(g, slot["Outputs"], n_tensors, f"{where} output tensor", f.check),
    )
    if sizes is not None:
        sub.sizes = sizes  # fills the cached property: NumPy has them cheaper than it would
    _check_acyclic(sub, f.check)
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
    if _in_execution_order(sub.operators, writer):
        return  # as converters write them: no cycle
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


def _in_execution_order(operators: list[Operator], writer: dict[int, int]) -> bool:
    """Whether every operator reads only tensors written before it, or by none.

    Plain loops: a generator under all() costs a third more, per input of every operator.
    """
    written_by = writer.get
    for op in operators:
        i = op.index
        for t in op.inputs:
            if written_by(t, -1) >= i:
                return False
    return True


def _short(items: Iterable[int], limit: int = 8) -> str:
    items = list(items)
    text = ", ".join(map(str, items[:limit]))
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")
