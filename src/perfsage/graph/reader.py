"""Read a ``.tflite`` flatbuffer into the graph IR, checking it on the way.

Tables are read with the small accessors in :mod:`perfsage.graph.flatbuf` (weights stay
zero-copy views into the file), and builtin options through the schema's generated object
API, so every option table of the schema is understood without a hand-written list.
A subgraph's tensors and operators are read column-wise, all at once, with NumPy.

Python's flatbuffers package has no verifier; instead every index is checked against the
table it points into, every vector length against the file size, every constant's bytes
against its shape, and every operator's options against its tensors' shapes
(:mod:`perfsage.graph.consistency`); each failure names what is wrong. Reads that run
outside the file raise ``struct.error``, ``IndexError`` or ``ValueError``; those alone are
reported as a malformed file, naming the part being read. Anything else escaping is a bug
in PerfSAGE, not in the user's file, and is left to surface as one.

Only regular files are read, and at most :data:`MAX_MODEL_BYTES`: a FIFO, a device or a
directory is refused before it is opened for reading.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from itertools import starmap
from os import PathLike
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from perfsage.errors import ModelFileError
from perfsage.graph import schema
from perfsage.graph.consistency import check_operators
from perfsage.graph.flatbuf import SLOTS, Bytes, Columns, Table, split
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

#: The largest model read: a flatbuffer addresses at most 2 GiB (signed 32-bit offsets).
MAX_MODEL_BYTES = 2**31 - 1

#: The most elements one tensor may claim: far above any model an edge device runs, and
#: low enough that every count, product and logarithm computed from shapes stays finite.
MAX_TENSOR_ELEMENTS = 2**40

# What reading past the end of the buffer, or at a position no table can be, raises from
# the accessors and the generated object API. Nothing else is taken for a malformed file.
_MALFORMED = (struct.error, IndexError, ValueError)

_MIN_SIZE = 8  # root offset + file identifier
_IDENTIFIER = b"TFL3"
# Type codes whose constants are not stored as shape x bits: variable-length strings,
# handles, and sub-byte types whose packing differs between converter versions.
_UNSIZED_TYPES = frozenset(code for code, name in schema.DTYPE_NAMES.items()
                           if name in ("string", "resource", "variant", "int4", "int2"))

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
_B_OFFSET, _B_SIZE, _B_DATA = (SLOTS["Buffer"][f] for f in ("Offset", "Size", "Data"))
_OPTION_UNIONS = (
    (SLOTS["Operator"]["BuiltinOptionsType"], SLOTS["Operator"]["BuiltinOptions"],
     schema.options_layout),
    (SLOTS["Operator"]["BuiltinOptions2Type"], SLOTS["Operator"]["BuiltinOptions2"],
     schema.options2_layout),
)
_SCALAR_CODES = {code: struct.Struct("<" + code) for code in "bBhHiIqQfd?"}


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
        The model as IR, validated: every index in range, every graph acyclic, every
        constant's size and every operator's options consistent with its shapes.

    Raises:
        ModelFileError: the file is missing, not a regular file, larger than
            :data:`MAX_MODEL_BYTES`, or not a valid TFLite model.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label, buf = name or "<bytes>", bytes(source)
    elif isinstance(source, mmap.mmap):
        label, buf = name or "<bytes>", source
    else:
        label = str(source)
        buf = _read_file(Path(source))
    check = _Checker(label, len(buf))
    try:
        return _parse(buf, check, details)
    except _MALFORMED as exc:
        check.fail(f"malformed flatbuffer: {check.part} point outside the file "
                   f"({type(exc).__name__}: {exc})")


@contextmanager
def mapped(source: Source) -> Iterator[tuple[bytes | mmap.mmap, str | None]]:
    """(contents, name for read_model) of a model file, memory-mapped rather than read.

    Reading a model with ``details=False`` touches its tables but never its weights, most
    of the file: mapped, those pages are not copied at all. Bytes pass through unchanged
    (name None); an empty file is read, and anything :func:`read_model` would refuse (a
    missing file, a FIFO, a device, a directory, a file over the size bound) raises the
    same ModelFileError. The map closes on leaving the block unless a model read from it
    is still alive, whose arrays then keep it open.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield source, None
        return
    path = Path(source)
    fd, size = _open_regular(path)
    try:
        view = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if size else None
    except (OSError, ValueError):
        view = None
    if view is None:
        yield _read_open(fd, size, path), str(source)
        return
    os.close(fd)
    try:
        yield view, str(source)
    finally:
        with suppress(BufferError):  # still viewed: closed when the last view goes
            view.close()


#: What each kind of non-regular file is called in the refusal.
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _refusal(mode: int) -> str | None:
    """Why a file of this mode is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a .tflite file (only regular files are read)"


def _open_regular(path: Path) -> tuple[int, int]:
    """(open descriptor, size) of a regular model file within the size bound.

    The file is examined with ``stat`` before it is opened, so a FIFO never blocks the
    open and a device is never opened; it is opened non-blocking and examined again, in
    case it was replaced in between.
    """
    try:
        _check_regular(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ModelFileError(path, "no such file") from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        _check_regular(path, info)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _check_regular(path: Path, info: os.stat_result) -> None:
    refusal = _refusal(info.st_mode)
    if refusal is not None:
        raise ModelFileError(path, refusal)
    if info.st_size > MAX_MODEL_BYTES:
        raise ModelFileError(path, _too_large(info.st_size))


def _too_large(size: int) -> str:
    return (f"file is {size / 2**30:.1f} GiB, larger than the {MAX_MODEL_BYTES / 2**30:.0f} "
            "GiB a TFLite flatbuffer can address (models that large do not fit an edge "
            "device)")


def _read_file(path: Path) -> bytes:
    """The contents of a regular model file (see :func:`_open_regular`)."""
    fd, size = _open_regular(path)
    return _read_open(fd, size, path)


def _read_open(fd: int, size: int, path: Path) -> bytes:
    """Read and close ``fd``: the ``size`` bytes ``fstat`` gave (within the size bound).

    One byte more is asked for, to tell a file still being written from a whole one.
    """
    try:
        with open(fd, "rb") as file:
            data = file.read(size + 1)
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > size:
        raise ModelFileError(path, "grew while being read (is it still being written?)")
    return data


class _Checker:
    """Raises ModelFileError with the model's label; keeps range checks one-liners.

    ``part`` names what is being read, for the message when a read runs off the file.
    """

    __slots__ = ("label", "size", "part")

    def __init__(self, label: str, size: int) -> None:
        self.label = label
        self.size = size
        self.part = "the model's tables"

    def fail(self, problem: str) -> NoReturn:
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


def _parse(buf: bytes, check: _Checker, details: bool = True) -> Model:
    if len(buf) < _MIN_SIZE:
        check.fail(f"file is {len(buf)} bytes, too short to be a TFLite model")
    if len(buf) > MAX_MODEL_BYTES:
        check.fail(_too_large(len(buf)))
    if buf[4:8] != _IDENTIFIER:
        check.fail("not a TFLite flatbuffer (no 'TFL3' file identifier)")
    root = Table.root(buf)
    slot = SLOTS["Model"]

    data = Bytes(buf)
    check.part = "operator codes"
    codes = [_opcode(c) for c in _tables(root, slot["OperatorCodes"], check, "operator_codes")]
    check.part = "buffers"
    buffers = _buffer_table(root, buf, check, data)
    check.part = "subgraphs"
    graphs = _tables(root, slot["Subgraphs"], check, "subgraphs")
    if not graphs:
        check.fail("model has no subgraphs")
    f = _File(buf, data, check, codes, buffers, len(graphs), details)
    subgraphs = [_subgraph(g, i, f) for i, g in enumerate(graphs)]
    if not subgraphs[0].operators:
        check.fail("empty graph: the main subgraph has no operators")
    check.part = "signatures"
    signatures = tuple(s.string(SLOTS["SignatureDef"]["SignatureKey"])
                       for s in _tables(root, slot["SignatureDefs"], check, "signature_defs"))
    return Model(subgraphs=subgraphs, source=check.label,
                 version=root.scalar(slot["Version"], "uint32"),
                 description=root.string(slot["Description"]), size_bytes=len(buf),
                 signatures=signatures)


def _tables(parent: Table, slot: int, check: _Checker, what: str) -> list[Table]:
    """A vector of sub-tables whose claimed length fits in the file."""
    check.length(parent.length(slot), 4, what)
    return parent.tables(slot)


def _opcode(code: Table) -> tuple[str, str | None, int]:
    """(builtin name, custom code, version) of one OperatorCode entry."""
    slot = SLOTS["OperatorCode"]
    # Schema v3a moved the code to a 32-bit field; old files only fill the deprecated one.
    value = max(code.scalar(slot["BuiltinCode"], "int32"),
                code.scalar(slot["DeprecatedBuiltinCode"], "int8"))
    opname = schema.BUILTIN_OPERATORS.get(value, f"UNKNOWN_BUILTIN_{value}")
    custom = code.string(slot["CustomCode"]) if opname == "CUSTOM" else None
    return opname, custom, code.scalar(slot["Version"], "int32", default=1)


class _BufferTable:
    """Resolves buffer indices to their constant bytes (zero-copy views of the file).

    ``offsets``, ``sizes``, ``starts`` and ``lengths`` say where every buffer lies: an
    ``offset`` above 1 places its bytes after the flatbuffer (``size`` of them), else they
    are its data vector (``lengths`` bytes from ``starts``).
    """

    def __init__(self, buf: bytes, u8: np.ndarray, check: _Checker,
                 places: tuple[np.ndarray, ...]) -> None:
        self.buf, self.u8, self.check = buf, u8, check
        offsets, sizes, starts, lengths = places
        outside = offsets > 1
        # Where each buffer's bytes start and end, as unsigned 64-bit (offsets may be huge).
        self.starts = np.where(outside, offsets, starts.astype(np.uint64))
        self.ends = self.starts + np.where(outside, sizes, lengths.astype(np.uint64))
        self.past = (self.ends > len(buf)) | (self.ends < self.starts)

    def __len__(self) -> int:
        return len(self.starts)

    def data_of(self, indices: np.ndarray, where: str) -> list[np.ndarray | None]:
        """The bytes of each buffer index (None where empty), failing on a bad one."""
        if not indices.size:
            return []
        n = len(self)
        if int(indices.max()) >= n:
            t = int(np.argmax(indices >= n))
            self.check.index(int(indices[t]), n, f"{where} tensor {t} buffer index")
        if self.past[indices].any():
            t = int(np.argmax(self.past[indices]))
            self.check.fail(f"{where} tensor {t}: buffer {int(indices[t])} points past the "
                            "end of the file")
        u8 = self.u8
        return [u8[a:b] if a < b else None
                for a, b in zip(self.starts[indices].tolist(), self.ends[indices].tolist(),
                                strict=True)]


def _buffer_table(root: Table, buf: bytes, check: _Checker, data: Bytes) -> _BufferTable:
    """The model's buffers, all placed at once."""
    slot = SLOTS["Model"]["Buffers"]
    check.length(root.length(slot), 4, "buffers")
    cols = Columns.of(root, slot, data)
    return _BufferTable(buf, data.u8, check, (
        cols.scalars(_B_OFFSET, "<u8"), cols.scalars(_B_SIZE, "<u8"), *cols.vectors(_B_DATA)))


def _first_table(ends: list[int], position: int) -> int:
    """Which table's values hold flat ``position``, given :meth:`Columns.flat`'s ``ends``."""
    return int(np.searchsorted(np.asarray(ends), position, side="right"))


def _tensors(g: Table, where: str, f: _File) -> tuple[list[Tensor], TensorSizes]:
    """Every tensor of a subgraph, a field at a time across all of them, and their sizes."""
    f.check.length(g.length(_SG_TENSORS), 4, f"{where} tensors")
    f.check.part = f"{where} tensors"
    cols = Columns.of(g, _SG_TENSORS, f.data)
    flat, ends = cols.flat(_T_SHAPE, "<i4")
    shapes = split(flat, ends)
    if flat.size and flat.min() < -1:
        t = _first_table(ends, int(np.argmax(flat < -1)))
        f.check.fail(f"{where} tensor {t} has an invalid shape {list(shapes[t])}")
    codes = cols.scalars(_T_TYPE, "<i1")
    dtypes = _dtype_names()[codes.view(np.uint8)].tolist()
    if None in dtypes:
        t = dtypes.index(None)
        f.check.fail(f"{where} tensor {t} has unknown type code {int(codes[t])}")
    variable = (cols.scalars(_T_VARIABLE, "u1") != 0).tolist()
    sparse = _sparse(cols)
    buffers = cols.scalars(_T_BUFFER, "<u4")
    data = f.buffers.data_of(buffers, where)
    buffers = buffers.tolist()
    # Each tensor's fields positionally, in Tensor's field order: per tensor, keywords or a
    # comprehension unpacking the zip cost more than starmap.
    tensors = list(starmap(Tensor, zip(
        range(len(cols)), _names(cols, f.details), shapes, dtypes,
        _quantizations(cols, f.details, where, f.check), _signatures(cols, shapes), buffers,
        data, variable, sparse, strict=True)))
    sizes = _sizes(tensors, shapes, codes, data, sparse)
    _check_sizes(sizes, tensors, codes, data, sparse, where, f.check)
    return tensors, sizes


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


@cache
def _sized_by_code() -> np.ndarray:
    """Whether a constant of each type code stores exactly shape x bits of data."""
    table = np.ones(max(schema.DTYPE_NAMES) + 1, dtype=bool)
    table[list(_UNSIZED_TYPES)] = False
    return table


def _sizes(tensors: list[Tensor], shapes: list[tuple[int, ...]], codes: np.ndarray,
           data: list[np.ndarray | None], sparse: list[bool]) -> TensorSizes:
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
    constant = [d is not None for d in data]
    if any(sparse):
        for i in [i for i, (s, c) in enumerate(zip(sparse, constant, strict=True)) if s and c]:
            nbytes[i] = tensors[i].nbytes  # stored compressed: its bytes in the file
    return TensorSizes(elements, bits.tolist(), nbytes, constant)


def _check_sizes(sizes: TensorSizes, tensors: list[Tensor], codes: np.ndarray,
                 data: list[np.ndarray | None], sparse: list[bool], where: str,
                 check: _Checker) -> None:
    """Fail on a tensor too large to be real, or a constant with fewer bytes than its shape.

    The interpreter refuses a constant whose buffer is smaller than its shape needs (LiteRT
    ``Subgraph::SetTensorParametersReadOnly``); strings, handles, sub-byte types and sparse
    tensors are stored otherwise and not compared.
    """
    if max(sizes.elements, default=0) > MAX_TENSOR_ELEMENTS:
        t = next(i for i, e in enumerate(sizes.elements) if e > MAX_TENSOR_ELEMENTS)
        check.fail(f"{where} tensor {t} has shape {list(tensors[t].shape)}: "
                   f"{sizes.elements[t]:.3g} elements, more than the {MAX_TENSOR_ELEMENTS:.3g} "
                   "a tensor may have")
    const = [i for i, d in enumerate(data) if d is not None]
    if not const:
        return
    stored = np.array([data[i].size for i in const], dtype=np.int64)
    needed = np.array(sizes.nbytes, dtype=np.int64)[const]
    short = (stored < needed) & _sized_by_code()[codes[const]]
    if short.any():
        for j in np.flatnonzero(short).tolist():
            i = const[j]
            if not sparse[i]:
                check.fail(f"{where} tensor {i} is a constant of shape {list(tensors[i].shape)} "
                           f"({tensors[i].dtype}, {int(needed[j])} bytes) but its buffer holds "
                           f"{int(stored[j])} bytes")


def _names(cols: Columns, details: bool) -> list[str]:
    """Each tensor's name; '' without details, though where they lie is read all the same."""
    if details:
        return cols.strings(_T_NAME)
    cols.vectors(_T_NAME)
    return [""] * len(cols)


def _quantizations(cols: Columns, details: bool, where: str,
                   check: _Checker) -> list[Quantization | None]:
    """Each tensor's quantisation: None where it has no scales.

    Without details, all None, after the same reads and range checks.
    """
    present, q = cols.tables(_T_QUANTIZATION)
    if not details:
        for slot, width in ((_Q_SCALE, 4), (_Q_ZERO, 8)):
            starts, lengths = q.vectors(slot)
            past = starts + width * lengths > len(cols.buf)
            if past.any():
                t = int(np.flatnonzero(present)[np.argmax(past)])
                check.fail(f"{where} tensor {t}: quantization parameters run past the end of "
                           "the file")
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


def _decoded(layout: schema.OptionsLayout, buf: bytes, pos: int) -> dict[str, Any]:
    """One options table as named fields (snake_case), enums by name, vectors as lists.

    Read at the slots its layout names; a table holding strings goes through the generated
    object API instead, imported for it alone.
    """
    if not layout.decodable:
        return _named_fields(getattr(schema.fb, layout.name + "T").InitFromBuf(buf, pos))
    table = Table(buf, pos)
    fields: dict[str, Any] = {}
    for name, slot, code, default in layout.fields:
        at = table.field(slot)
        if not at:
            value = default
        elif code[0] == "[":
            value = list(table.values(slot, code[1:]))
        else:
            value = _SCALAR_CODES[code].unpack_from(buf, pos + at)[0]
        names = schema.enum_field_names(name)
        if names is not None and isinstance(value, int):
            value = names.get(value, value)
        fields[name] = value
    return fields


#: Decoded scalar-only option tables by (layout, vtable, inline bytes); models repeat a few.
_OPTIONS_CACHE: dict[tuple, dict[str, Any]] = {}
_OPTIONS_CACHE_LIMIT = 4096


def _option_fields(layout: schema.OptionsLayout, buf: bytes, pos: int,
                   key: tuple[tuple[int, ...], bytes] | None) -> dict[str, Any]:
    """One options table as named fields, from the cache when its bytes were seen before.

    A table of scalars is wholly described by ``key`` (its vtable and inline bytes), so
    equal keys decode to equal fields.
    """
    if key is None or not layout.scalars_only:
        return _decoded(layout, buf, pos)
    key = (layout.name, *key)
    fields = _OPTIONS_CACHE.get(key)
    if fields is None:
        if len(_OPTIONS_CACHE) >= _OPTIONS_CACHE_LIMIT:
            _OPTIONS_CACHE.clear()
        fields = _OPTIONS_CACHE[key] = _decoded(layout, buf, pos)
    return dict(fields)


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
                   lookup: Callable[[int], schema.OptionsLayout | None],
                   options: list[dict[str, Any]], callers: list[int]) -> None:
    """Add one union's options to each operator's, and list those that can call subgraphs.

    A model repeats a few option tables (its 3x3 convolutions, its ADDs): a table of
    scalars, known by its member, vtable and inline bytes, is decoded once per model.
    """
    kinds = cols.scalars(type_slot, "u1").tolist()
    layouts = {k: lookup(k) for k in set(kinds) if k}
    if not any(layouts.values()):
        return
    present, tables = cols.tables(table_slot)
    decoded: dict[tuple, dict[str, Any]] = {}
    for i, pos, found in zip(np.flatnonzero(present).tolist(), tables.pos.tolist(),
                             tables.layouts(), strict=True):
        layout = layouts.get(kinds[i])
        if layout is None:
            continue
        if found is None or not layout.scalars_only:
            fields = _option_fields(layout, cols.buf, pos, None)
        else:
            key = (layout.name, *found)
            fields = decoded.get(key)
            if fields is None:
                fields = decoded[key] = _option_fields(
                    layout, cols.buf, pos, (tables.entries(found[0]), found[1]))
        options[i].update(fields)
        if layout.names_subgraphs:
            callers.append(i)


def _indices(t: Table, slot: int, n: int, what: str, check: _Checker) -> tuple[int, ...]:
    """A vector of tensor indices of one table (a subgraph's inputs or outputs), checked."""
    check.length(t.length(slot), 4, what)
    values = t.values(slot, "i")
    for v in values:
        check.index(v, n, what)
    return values


def _indices_at_once(cols: Columns, slot: int, n: int, names: list[str], where: str,
                     check: _Checker, optional: bool = False) -> list[tuple]:
    """A vector of tensor indices of every operator, checked (-1 allowed when ``optional``)."""
    flat, ends = cols.flat(slot, "<i4")
    if flat.size:
        bad = (flat < (-1 if optional else 0)) | (flat >= n)
        if bad.any():
            at = int(np.argmax(bad))
            i = _first_table(ends, at)
            check.index(int(flat[at]), n, f"{where} operator {i} ({names[i]}) tensor index")
    return split(flat, ends)


def _operators(g: Table, where: str, n_tensors: int, f: _File) -> list[Operator]:
    """Every operator of a subgraph, a field at a time across all of them."""
    check = f.check
    check.length(g.length(_SG_OPERATORS), 4, f"{where} operators")
    check.part = f"{where} operators"
    cols = Columns.of(g, _SG_OPERATORS, f.data)
    opcodes = cols.scalars(_OP_OPCODE, "<u4").tolist()
    if opcodes and max(opcodes) >= len(f.codes):
        i = next(i for i, c in enumerate(opcodes) if c >= len(f.codes))
        check.index(opcodes[i], len(f.codes), f"{where} operator {i} opcode index")
    codes = [f.codes[c] for c in opcodes]  # (name, custom code, version) of each operator
    names = [c[0] for c in codes]
    options, callers = _options_at_once(cols)
    # Positionally, in Operator's field order (see _tensors).
    operators = list(starmap(Operator, zip(
        range(len(cols)), names,
        _indices_at_once(cols, _OP_INPUTS, n_tensors, names, where, check, optional=True),
        _indices_at_once(cols, _OP_OUTPUTS, n_tensors, names, where, check), options,
        [c[1] for c in codes], [c[2] for c in codes],
        _indices_at_once(cols, _OP_INTERMEDIATES, n_tensors, names, where, check),
        strict=True)))
    for i in callers:
        for called in operators[i].called_subgraphs:
            check.index(called, f.n_subgraphs, f"{where} operator {i} ({names[i]}) subgraph "
                        "index")
    return operators


def _subgraph(g: Table, index: int, f: _File) -> Subgraph:
    where = f"subgraph {index}"
    slot = SLOTS["SubGraph"]
    tensors, sizes = _tensors(g, where, f)
    n_tensors = len(tensors)
    operators = _operators(g, where, n_tensors, f)
    f.check.part = where
    sub = Subgraph(
        index=index, name=g.string(slot["Name"]), tensors=tensors, operators=operators,
        inputs=_indices(g, slot["Inputs"], n_tensors, f"{where} input tensor", f.check),
        outputs=_indices(g, slot["Outputs"], n_tensors, f"{where} output tensor", f.check),
    )
    sub.sizes = sizes  # fills the cached property: NumPy has them cheaper than it would
    _check_acyclic(sub, f.check)
    check_operators(sub, f.check.fail)
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
