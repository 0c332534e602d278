"""Broken models end in ModelFileError naming the file and the problem, never a crash."""

from __future__ import annotations

import pytest
from ai_edge_litert import schema_py_generated as fb

from helpers import keras_models
from helpers.tflite_edit import edit
from perfsage.errors import ModelFileError
from perfsage.graph import read_model

pytestmark = [pytest.mark.tensorflow]


@pytest.fixture(scope="module")
def good(converted) -> bytes:
    return converted("small-conv-int8", lambda: keras_models.zoo("small-conv")).read_bytes()


def _op(m: fb.ModelT, i: int = 0) -> fb.OperatorT:
    return m.subgraphs[0].operators[i]


def _set(path: str, value):
    """An edit that assigns ``value`` to ``path`` (attribute names, indices as ints)."""

    def change(m):
        *parents, last = path.split(".")
        obj = m
        for part in parents:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        if last.isdigit():
            obj[int(last)] = value
        else:
            setattr(obj, last, value)

    return change


def _cycle(m: fb.ModelT) -> None:
    # Operator 0 now reads what operator 1 writes, and operator 1 reads operator 0's output.
    _op(m, 0).inputs[0] = _op(m, 1).outputs[0]


def _written_twice(m: fb.ModelT) -> None:
    _op(m, 1).outputs[0] = _op(m, 0).outputs[0]


EDITS = {
    "tensor index": (_set("subgraphs.0.operators.0.inputs.0", 9999), "tensor index 9999 is out"),
    "output index": (_set("subgraphs.0.operators.1.outputs.0", 500), "out of range"),
    "buffer index": (_set("subgraphs.0.tensors.1.buffer", 77777), "buffer index 77777"),
    "opcode index": (_set("subgraphs.0.operators.0.opcodeIndex", 300), "opcode index 300"),
    "graph input": (_set("subgraphs.0.inputs.0", 4000), "input tensor 4000"),
    "cycle": (_cycle, "cyclic graph"),
    "written twice": (_written_twice, "is written by operators"),
    "empty graph": (_set("subgraphs.0.operators", []), "empty graph"),
    "no subgraphs": (_set("subgraphs", []), "no subgraphs"),
    "bad shape": (_set("subgraphs.0.tensors.0.shape", [1, -5, 3]), "invalid shape"),
    "bad dtype": (_set("subgraphs.0.tensors.0.type", 120), "unknown type code 120"),
}


@pytest.mark.parametrize("case", EDITS)
def test_structural_damage_is_named(good, case):
    change, expected = EDITS[case]
    with pytest.raises(ModelFileError, match=expected) as info:
        read_model(edit(good, change), name="broken.tflite")
    assert str(info.value).startswith("broken.tflite: ")


def test_called_subgraph_out_of_range(converted):
    data = converted("while", keras_models.while_loop_function, quantize="float32").read_bytes()

    def change(m):
        for op in m.subgraphs[0].operators:
            if isinstance(op.builtinOptions, fb.WhileOptionsT):
                op.builtinOptions.bodySubgraphIndex = 42

    with pytest.raises(ModelFileError, match="subgraph index 42"):
        read_model(edit(data, change))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "too short"),
        (b"\x00" * 4, "too short"),
        (b"hello, this is not a model at all", "no 'TFL3' file identifier"),
        (b"\x10\x00\x00\x00TFL3" + b"\xff" * 8, "malformed flatbuffer"),
    ],
)
def test_not_a_model(data, expected):
    with pytest.raises(ModelFileError, match=expected):
        read_model(data)


def test_truncated_model(good):
    with pytest.raises(ModelFileError):
        read_model(good[: len(good) // 3], name="cut.tflite")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        read_model(tmp_path / "absent.tflite")
    with pytest.raises(ModelFileError, match="is a directory"):
        read_model(tmp_path)


def test_errors_survive_pickling_between_processes():
    import pickle

    error = pickle.loads(pickle.dumps(ModelFileError("m.tflite", "truncated")))
    assert isinstance(error, ModelFileError) and str(error) == "m.tflite: truncated"
