"""Broken models end in ModelFileError naming the file and the problem, never a crash.

Also what is not a model file at all (a FIFO, a device, a directory, a huge file) and models
whose operator options contradict their tensor shapes: each ends at once in one clear error.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ai_edge_litert import schema_py_generated as fb

from helpers import keras_models
from helpers.tflite_edit import edit
from perfsage.errors import ModelFileError
from perfsage.graph import read_model
from perfsage.graph.reader import MAX_MODEL_BYTES, mapped

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


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


@pytest.mark.tensorflow
@pytest.mark.parametrize("case", EDITS)
def test_structural_damage_is_named(good, case):
    change, expected = EDITS[case]
    with pytest.raises(ModelFileError, match=expected) as info:
        read_model(edit(good, change), name="broken.tflite")
    assert str(info.value).startswith("broken.tflite: ")


@pytest.mark.tensorflow
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


@pytest.mark.tensorflow
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


# -- what is not a regular file ---------------------------------------------------------


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail the test, rather than hang the suite, if it blocks for 10 s (a FIFO's open)."""

    def expire(signum, frame):
        raise TimeoutError("blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _both_ways(path: Path | str, expected: str) -> None:
    """read_model(path) and mapped(path) both refuse ``path`` with ``expected``."""
    with pytest.raises(ModelFileError, match=expected) as info:
        read_model(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match=expected), mapped(path):
        pass


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, deadline):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    _both_ways(fifo, "is a FIFO")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_unread(deadline):
    _both_ways("/dev/zero", "is a character device")


def test_a_directory_is_refused(tmp_path):
    _both_ways(tmp_path, "is a directory")


def test_a_file_past_the_size_bound_is_refused_unread(tmp_path, deadline):
    huge = tmp_path / "huge.tflite"
    with open(huge, "wb") as file:
        file.truncate(MAX_MODEL_BYTES + 1)  # sparse: nothing is written to disk
    _both_ways(huge, "larger than")


def test_a_symlink_to_a_model_is_read(tmp_path):
    link = tmp_path / "link.tflite"
    link.symlink_to(EXAMPLES / "op_zoo_int8.tflite")
    assert read_model(link).main.operators


# -- operator options against tensor shapes ------------------------------------------------

ZOO = EXAMPLES / "op_zoo_int8.tflite"  # CONV_2D, DEPTHWISE, pools, TRANSPOSE_CONV, FC ...
# op_zoo_int8: 0 CONV_2D 3x3/2 SAME 32x32x3 -> 16x16x16; 1 DEPTHWISE 3x3/1 SAME;
# 3 CONV_2D 1x1 VALID; 5 AVERAGE_POOL_2D 2x2/2 VALID; 6 MAX_POOL_2D 2x2/2 VALID;
# 8 TRANSPOSE_CONV 3x3/2 SAME 8x8x32 -> 16x16x8; 15 FULLY_CONNECTED 3 -> 10.


def _option(op: int, field: str, value) -> Callable[[fb.ModelT], None]:
    def change(m: fb.ModelT) -> None:
        setattr(m.subgraphs[0].operators[op].builtinOptions, field, value)
    return change


def _shape(op: int, which: str, slot: int, shape: list[int]) -> Callable[[fb.ModelT], None]:
    def change(m: fb.ModelT) -> None:
        tensors = getattr(m.subgraphs[0].operators[op], which)
        m.subgraphs[0].tensors[tensors[slot]].shape = shape
    return change


def _no_options(op: int) -> Callable[[fb.ModelT], None]:
    def change(m: fb.ModelT) -> None:
        m.subgraphs[0].operators[op].builtinOptionsType = 0
        m.subgraphs[0].operators[op].builtinOptions = None
    return change


CONTRADICTIONS = {
    "stride 0": (_option(0, "strideH", 0), r"operator 0 \(CONV_2D\): stride_h 0"),
    "negative stride": (_option(0, "strideW", -3), r"operator 0 \(CONV_2D\): stride_w -3"),
    "huge stride": (_option(0, "strideH", 2**31 - 1), r"operator 0 \(CONV_2D\).*output height"),
    "stride 3 for a 2x output": (_option(0, "strideW", 3), r"operator 0 \(CONV_2D\).*width 16"),
    "dilation 0": (_option(1, "dilationHFactor", 0),
                   r"operator 1 \(DEPTHWISE_CONV_2D\): dilation_h_factor 0"),
    "no options": (_no_options(0), r"operator 0 \(CONV_2D\): stride_h 0"),
    "padding": (_option(10, "padding", fb.Padding.VALID), r"operator 10 \(CONV_2D\).*height"),
    "conv channels": (_shape(3, "inputs", 0, [1, 16, 16, 5]), r"operator 3 \(CONV_2D\).*channels"),
    "conv filters": (_shape(3, "outputs", 0, [1, 16, 16, 12]), r"operator 3 \(CONV_2D\).*16"),
    "depthwise channels": (_shape(1, "outputs", 0, [1, 16, 16, 32]),
                           r"operator 1 \(DEPTHWISE_CONV_2D\).*channels"),
    "pool filter 0": (_option(5, "filterWidth", 0), r"operator 5 \(AVERAGE_POOL_2D\): filter_w"),
    "pool stride": (_option(6, "strideH", 1), r"operator 6 \(MAX_POOL_2D\).*height"),
    "pool channels": (_shape(6, "outputs", 0, [1, 8, 8, 15]), r"operator 6 \(MAX_POOL_2D\)"),
    "transpose conv stride": (_option(8, "strideH", 3), r"operator 8 \(TRANSPOSE_CONV\)"),
    "transpose conv channels": (_shape(8, "inputs", 2, [1, 8, 8, 30]),
                                r"operator 8 \(TRANSPOSE_CONV\).*channels"),
    "fully connected": (_shape(15, "inputs", 0, [1, 4]), r"operator 15 \(FULLY_CONNECTED\)"),
    "fully connected units": (_shape(15, "outputs", 0, [1, 11]),
                              r"operator 15 \(FULLY_CONNECTED\)"),
    "zero dimension": (_shape(3, "inputs", 0, [1, 16, 0, 16]), r"operator 3 \(CONV_2D\)"),
    "constant smaller than its shape": (_shape(0, "inputs", 1, [16, 3, 3, 4]),
                                        r"tensor \d+ is a constant of shape \[16, 3, 3, 4\]"),
    "huge tensor": (_shape(13, "outputs", 0, [2**31 - 1] * 3), r"tensor \d+ .*elements"),
}


@pytest.mark.parametrize("case", CONTRADICTIONS)
def test_options_that_contradict_shapes_are_named(case):
    change, expected = CONTRADICTIONS[case]
    data = edit(ZOO.read_bytes(), change)
    with pytest.raises(ModelFileError, match=expected) as info:
        read_model(data, name="edited.tflite")
    assert str(info.value).startswith("edited.tflite: subgraph 0")
    assert "\n" not in str(info.value)


def test_the_unedited_model_is_consistent():
    # The edits above are the only difference: re-packing alone changes nothing.
    assert read_model(edit(ZOO.read_bytes(), lambda m: None)).main.operators


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.tflite")), ids=lambda p: p.stem)
def test_example_models_pass_the_checks(path):
    read_model(path)


def test_models_of_every_search_space_pass_the_checks():
    from perfsage.spaces import get_space, space_names

    for name in space_names():
        space = get_space(name)
        for i in range(4):
            read_model(space.build(space.sample_seeded(0, i)), name=f"{name}-{i}")


def test_a_buffer_placed_past_the_end_of_the_file():
    def change(m: fb.ModelT) -> None:
        weights = m.buffers[m.subgraphs[0].tensors[m.subgraphs[0].operators[0].inputs[1]].buffer]
        weights.data, weights.offset, weights.size = None, 2**40, 432

    with pytest.raises(ModelFileError, match=r"subgraph 0 tensor \d+: buffer \d+ points past"):
        read_model(edit(ZOO.read_bytes(), change))


def test_a_bug_of_ours_is_not_blamed_on_the_file(monkeypatch):
    from perfsage.graph import reader

    def broken(cols):
        raise TypeError("a bug in PerfSAGE")

    monkeypatch.setattr(reader, "_options_at_once", broken)
    with pytest.raises(TypeError, match="a bug in PerfSAGE"):
        read_model(ZOO)


def test_a_fully_connected_input_smaller_than_one_row_is_accepted_as_litert_runs_it(tmp_path):
    path = tmp_path / "small_fc_input.tflite"
    path.write_bytes(edit(ZOO.read_bytes(), _shape(15, "inputs", 0, [1, 1])))
    read_model(path)  # ConvNeXt's converted layer scale has such an operator
