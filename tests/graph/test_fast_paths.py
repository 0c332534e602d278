"""The prediction path's shortcuts give what the plain ways give.

Column-wise reading against table-by-table reading, a memory-mapped file against its bytes,
and :class:`TensorSizes` against the tensors' own properties, on the example models and on
Keras models from the converter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import keras_models
from perfsage.errors import ModelFileError
from perfsage.graph import Model, read_model, reader
from perfsage.graph.ir import TensorSizes
from perfsage.graph.reader import mapped

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


def _one_by_one(data: bytes, details: bool, monkeypatch) -> Model:
    with monkeypatch.context() as patch:
        patch.setattr(reader, "_at_once", lambda at_once, one_by_one: one_by_one())
        return read_model(data, details=details)


@pytest.mark.parametrize("details", [True, False])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_column_wise_reading_matches_table_by_table(path, details, monkeypatch):
    data = path.read_bytes()
    assert _ir(read_model(data, details=details)) == _ir(_one_by_one(data, details, monkeypatch))


@pytest.mark.tensorflow
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "float16", "float32"])
def test_column_wise_reading_matches_on_keras_models(converted, mode, monkeypatch):
    path = converted(f"convnet-{mode}", lambda: keras_models.zoo("convnet"), quantize=mode)
    data = path.read_bytes()
    for details in (True, False):
        assert (_ir(read_model(data, details=details))
                == _ir(_one_by_one(data, details, monkeypatch)))


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
