"""The prediction path's shortcuts give what the plain ways give.

The reader's column-wise NumPy reads against the schema's generated object API and LiteRT's
interpreter, a memory-mapped file against its bytes, and :class:`TensorSizes` against the
tensors' own properties, on the example models and on Keras models from the converter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from helpers import keras_models
from helpers.tflite_edit import edit
from perfsage.errors import ModelFileError
from perfsage.graph import Model, Quantization, read_model, reader
from perfsage.graph.ir import TensorSizes
from perfsage.graph.reader import mapped
from perfsage.graph.schema import BUILTIN_OPERATORS, DTYPE_NAMES

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def _ir(model: Model) -> list:
    """Every field of the IR that the reader fills, constants' bytes included."""
    out: list = [model.version, model.description, model.size_bytes, model.signatures]
    for sub in model.subgraphs:
        out += [sub.index, sub.name, sub.inputs, sub.outputs]
        for t in sub.tensors:
            data = None if t.data is None else (t.data.dtype, t.data.tobytes())
            out.append((t.index, t.name, t.shape, t.dtype, t.quantization, t.shape_signature,
                        t.buffer, data, t.is_variable, t.is_sparse))
        for op in sub.operators:
            out.append((op.index, op.opcode, op.inputs, op.outputs, op.options,
                        op.custom_code, op.version, op.intermediates))
    return out


def _text(value: bytes | None) -> str:
    return value.decode() if value else ""


def _ints(values) -> tuple[int, ...]:
    return () if values is None else tuple(int(v) for v in values)


def _truth(data: bytes, details: bool) -> list:
    """What :func:`_ir` lists, decoded by the schema's generated object API instead.

    The generated code reads every table its own way (flatbuffers' ``Table``), so this is
    ground truth for the reader's column-wise NumPy reads; option tables are named with the
    reader's field naming, tested on its own in ``test_reader.py``.
    """
    m = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    out: list = [m.version, _text(m.description), len(data),
                 tuple(_text(s.signatureKey) for s in m.signatureDefs or [])]
    codes = []
    for c in m.operatorCodes:
        name = BUILTIN_OPERATORS[max(c.builtinCode, c.deprecatedBuiltinCode)]
        codes.append((name, _text(c.customCode) if name == "CUSTOM" else None, c.version))
    for index, sub in enumerate(m.subgraphs):
        out += [index, _text(sub.name), _ints(sub.inputs), _ints(sub.outputs)]
        for i, t in enumerate(sub.tensors):
            buffer = m.buffers[t.buffer]
            if buffer.offset > 1:
                stored = data[buffer.offset:buffer.offset + buffer.size]
            else:
                stored = b"" if buffer.data is None else bytes(bytearray(buffer.data))
            q = t.quantization
            scale = () if q is None or q.scale is None else tuple(float(v) for v in q.scale)
            quant = (Quantization(scale, _ints(q.zeroPoint) or (0,) * len(scale),
                                  q.quantizedDimension if len(scale) > 1 else None)
                     if scale and details else None)
            shape, signature = _ints(t.shape), _ints(t.shapeSignature)
            out.append((i, _text(t.name) if details else "", shape,
                        DTYPE_NAMES[t.type], quant, signature if signature not in ((), shape)
                        else None, t.buffer, (np.dtype(np.uint8), stored) if stored else None,
                        bool(t.isVariable), t.sparsity is not None))
        for i, op in enumerate(sub.operators):
            name, custom, version = codes[op.opcodeIndex]
            options = {}
            for table in (op.builtinOptions, op.builtinOptions2):
                if table is not None:
                    options.update(reader._named_fields(table))
            out.append((i, name, _ints(op.inputs), _ints(op.outputs), options, custom, version,
                        _ints(op.intermediates)))
    return out


@pytest.mark.parametrize("details", [True, False])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_reader_reads_what_the_schema_code_reads(path, details):
    data = path.read_bytes()
    assert _ir(read_model(data, details=details)) == _truth(data, details)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_reader_sees_the_tensors_litert_sees(path):
    from ai_edge_litert.interpreter import Interpreter

    main = read_model(path).main
    details = Interpreter(model_path=str(path)).get_tensor_details()
    assert len(details) == len(main.tensors)
    for ref in details:
        t = main.tensors[ref["index"]]
        assert (t.name, list(t.shape), np.dtype(t.dtype)) == (
            ref["name"], ref["shape"].tolist(), np.dtype(ref["dtype"]))


@pytest.mark.tensorflow
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "float16", "float32"])
def test_the_reader_reads_what_the_schema_code_reads_on_keras_models(converted, mode):
    path = converted(f"convnet-{mode}", lambda: keras_models.zoo("convnet"), quantize=mode)
    data = path.read_bytes()
    for details in (True, False):
        assert _ir(read_model(data, details=details)) == _truth(data, details)


def test_a_model_with_weights_after_the_flatbuffer_reads_them_there():
    # Buffers may hold an offset into the file instead of a data vector (large models).
    data = EXAMPLES[0].read_bytes()
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    moved = [b for b in model.buffers if b.data is not None and len(b.data)]
    tail = b"".join(bytes(bytearray(b.data)) for b in moved)
    sizes = [len(b.data) for b in moved]
    for b in moved:
        b.data, b.offset, b.size = None, 2**40, 2**40  # stored as the real ones will be
    head = edit(data, lambda m: m.buffers.__setitem__(slice(None), model.buffers))
    at = len(head) + (-len(head)) % 16
    where = at
    for b, size in zip(moved, sizes, strict=True):
        b.offset, b.size = where, size
        where += size
    head = edit(data, lambda m: m.buffers.__setitem__(slice(None), model.buffers))
    assert len(head) + (-len(head)) % 16 == at  # same table sizes: the offsets still hold
    packed = head + b"\0" * ((-len(head)) % 16) + tail
    model = read_model(packed)
    assert _ir(model) == _truth(packed, True)
    original = read_model(data)
    assert [t.data is not None and t.data.tobytes() for t in model.main.tensors] == [
        t.data is not None and t.data.tobytes() for t in original.main.tensors]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_a_mapped_file_reads_as_its_bytes(path):
    with mapped(path) as (contents, name):
        assert name == str(path)
        model = read_model(contents, name=name)
        assert _ir(model) == _ir(read_model(path.read_bytes(), name=name))
    # The model outlives the block: its constants still view the (still open) map.
    assert _ir(model) == _ir(read_model(path))


def test_mapped_passes_bytes_through_and_fails_as_read_model(tmp_path):
    data = EXAMPLES[0].read_bytes()
    with mapped(data) as (contents, name):
        assert contents is data and name is None
    for path, problem in ((tmp_path / "absent.tflite", "no such file"),
                          (tmp_path, "is a directory")):
        with pytest.raises(ModelFileError, match=problem), mapped(path):
            pass
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with mapped(empty) as (contents, name), pytest.raises(ModelFileError, match="too short"):
        read_model(contents, name=name)


def _assert_own_sizes(model: Model) -> None:
    """The sizes the reader filled in, and TensorSizes.of, are the tensors' properties."""
    for sub in model.subgraphs:
        for sizes in (sub.sizes, TensorSizes.of(sub.tensors)):
            assert sizes.elements == [t.num_elements for t in sub.tensors]
            assert sizes.bits == [t.bits for t in sub.tensors]
            assert sizes.nbytes == [t.nbytes for t in sub.tensors]
            assert sizes.constant == [t.is_constant for t in sub.tensors]
            assert all(type(v) is int for v in (*sizes.elements, *sizes.bits, *sizes.nbytes))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_tensor_sizes_are_the_tensors_own(path):
    assert "sizes" in vars(read_model(path).main)  # filled in by the column-wise reader
    _assert_own_sizes(read_model(path))
    _assert_own_sizes(read_model(path, details=False))


@pytest.mark.tensorflow
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "float16", "int16x8"])
def test_tensor_sizes_on_keras_models(converted, mode):
    name = "small-conv" if mode == "int16x8" else "convnet"
    path = converted(f"{name}-{mode}", lambda: keras_models.zoo(name), quantize=mode)
    _assert_own_sizes(read_model(path))


def test_flat_vectors_split_per_table():
    from perfsage.graph.flatbuf import split

    assert split(np.array([3, 1, 4, 1, 5]), [2, 2, 5]) == [(3, 1), (), (4, 1, 5)]
    assert split(np.array([], dtype=np.int32), [0, 0]) == [(), ()]
