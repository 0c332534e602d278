"""The layers real architectures need (zoo space): read back, int8 close to float, TFLite
Micro equal to the reference kernels, Vela runs them on the NPU.
"""

from __future__ import annotations

import builder_checks as checks
import numpy as np
import pytest

from perfsage.builder import ModelBuilder
from perfsage.errors import UsageError
from perfsage.graph import read_model


def _tokens(b, x):
    return b.dense(b.reshape(x, (64, 16)), 32)


def _attention(b, x):
    t = b.reshape(b.conv2d(x, 32, 2, stride=2), (1, 16, 32))
    t = b.layer_norm(t)
    rows = b.reshape(t, (16, 32))
    q, k, v = (b.transpose(b.reshape(b.dense(rows, 32), (16, 2, 16)), (1, 0, 2))
               for _ in range(3))
    s = b.softmax(b.mul_const(b.batch_matmul(q, k, adj_y=True), 0.25))
    o = b.reshape(b.transpose(b.batch_matmul(s, v), (1, 0, 2)), (16, 32))
    return b.add(rows, b.dense(o, 32))


def _lstm_cell(b, x):
    z = b.dense(b.reshape(x, (1, -1)), 64)
    i, f, g, o = b.split(z, 4, axis=1)
    c = b.add(b.mul(b.logistic(f), b.tanh(b.dense(b.reshape(x, (1, -1)), 16))),
              b.mul(b.logistic(i), b.tanh(g)))
    return b.mul(b.logistic(o), b.tanh(c))


IMG = (1, 8, 8, 16)
# name: (input shape, layers, int8 operators written, Vela (Ethos-U55) leaves a float island
# on the CPU)
CASES: dict[str, tuple] = {
    "batch_norm": (IMG, lambda b, x: b.batch_norm(b.conv2d(x, 16, 3, activation="relu")),
                   ["CONV_2D", "MUL", "ADD"], False),
    "rescaling": (IMG, lambda b, x: b.conv2d(b.add_const(b.mul_const(x, 2.0), -1.0), 8, 3),
                  ["MUL", "ADD", "CONV_2D"], False),
    "normalization": (IMG, lambda b, x: b.mul_const(b.sub_const(x, np.linspace(0, .5, 16)),
                                                    np.linspace(1, 3, 16)), ["SUB", "MUL"],
                      False),
    "hard_sigmoid": (IMG, lambda b, x: b.hard_sigmoid(b.mean(x)), ["MEAN", "ADD", "MUL"],
                     False),
    "hard_sigmoid_gate": (IMG, lambda b, x: b.mul(x, b.mul_const(b.conv2d(
        b.mean(x), 16, 1, activation="relu6", shift=3.0), 1 / 6)),
        ["MEAN", "CONV_2D", "MUL", "MUL"], False),
    "position_embedding": ((1, 64, 16), lambda b, x: b.add_const(x, np.linspace(-1, 1, 1024)),
                           ["ADD"], False),
    "sub": (IMG, lambda b, x: b.sub(b.conv2d(x, 16, 1), x, activation="relu"),
            ["CONV_2D", "SUB"], False),
    "layer_norm": ((1, 64, 16), lambda b, x: b.layer_norm(_tokens(b, x)),
                   ["RESHAPE", "FULLY_CONNECTED", "MEAN", "DEQUANTIZE", "NEG", "QUANTIZE",
                    "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "ADD", "MUL",
                    "ADD"], True),
    "tanh": (IMG, lambda b, x: b.tanh(b.conv2d(x, 8, 1)), ["CONV_2D", "TANH"], False),
    "gelu": (IMG, lambda b, x: b.gelu(b.conv2d(x, 8, 1)), ["CONV_2D", "GELU"], False),
    "gelu_decomposed": (IMG, lambda b, x: b.gelu_decomposed(b.conv2d(x, 8, 1)),
                        ["CONV_2D", "MUL", "MUL", "MUL", "ADD", "MUL", "TANH", "ADD", "MUL",
                         "MUL"], False),
    "transpose": (IMG, lambda b, x: b.conv2d(b.transpose(x, (0, 2, 1, 3)), 8, 1),
                  ["TRANSPOSE", "CONV_2D"], False),
    "channel_shuffle": (IMG, lambda b, x: b.reshape(b.transpose(
        b.reshape(x, (1, 8, 8, 2, 8)), (0, 1, 2, 4, 3)), (1, 8, 8, 16)),
        ["RESHAPE", "TRANSPOSE", "RESHAPE"], False),
    "split": (IMG, lambda b, x: b.concat([b.conv2d(p, 8, 1) for p in b.split(x, 2)]),
              ["SPLIT", "CONV_2D", "CONV_2D", "CONCATENATION"], False),
    "grouped_native": (IMG, lambda b, x: b.grouped_conv2d(x, 32, 4, activation="relu"),
                       ["CONV_2D"], False),
    "grouped_split": (IMG, lambda b, x: b.grouped_conv2d(x, 16, 2, native=False),
                      ["SPLIT", "CONV_2D", "CONV_2D", "CONCATENATION"], False),
    "dense_rows": ((1, 64, 16), lambda b, x: _tokens(b, x), ["RESHAPE", "FULLY_CONNECTED"],
                   False),
    "dense_keep_dims": ((1, 64, 16), lambda b, x: b.dense(x, 32, activation="relu"),
                        ["FULLY_CONNECTED"], False),
    "unpack": ((1, 4, 8), lambda b, x: b.concat([b.dense(s, 8) for s in b.unpack(
        b.reshape(x, (4, 1, 8)))], axis=1), ["RESHAPE", "UNPACK", "FULLY_CONNECTED",
                                             "FULLY_CONNECTED", "FULLY_CONNECTED",
                                             "FULLY_CONNECTED", "CONCATENATION"], False),
    "strided_slice": ((1, 48), lambda b, x: b.mul(b.strided_slice(x, (0, 0), (1, 16)),
                                                  b.strided_slice(x, (0, 32), (1, 48))),
                      ["STRIDED_SLICE", "STRIDED_SLICE", "MUL"], False),
    "reverse_sub": (IMG, lambda b, x: b.sub_const(b.logistic(x), 1.0, reverse=True),
                    ["LOGISTIC", "SUB"], False),
    "attention": (IMG, _attention, None, True),
    "lstm_cell": ((1, 4, 8), _lstm_cell, None, False),
}


def _build(name: str, dtype: str) -> bytes:
    shape, layers, _, _ = CASES[name]
    b = ModelBuilder(seed=0, dtype=dtype)
    return b.build([layers(b, b.input(shape))])


@pytest.mark.parametrize("name", list(CASES))
def test_reads_back_runs_and_stays_close_to_float(name: str) -> None:
    expected = CASES[name][2]
    outputs = {}
    for dtype in ("int8", "float32"):
        data = _build(name, dtype)
        ops = [op.opcode for op in read_model(data).main.operators]
        if expected is not None and dtype == "int8":
            assert ops == expected
        if dtype == "float32":  # float models have no float islands to mark
            assert not {"DEQUANTIZE", "QUANTIZE"} & set(ops)
        inputs = checks.random_inputs(data)
        out = checks.litert(data, inputs)
        if "GELU" not in ops:  # TFLite Micro has no GELU kernel
            checks.assert_tflm_matches(data, inputs, out)
        outputs[dtype] = (data, out)
    assert checks.xnnpack_partitions(outputs["int8"][0]), "XNNPACK refused the model"
    checks.assert_close_to_float(outputs["int8"][1], outputs["int8"][0], outputs["float32"][1])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_vela_runs_them_on_the_npu(name: str, tmp_path) -> None:
    result = checks.vela(_build(name, "int8"), tmp_path)
    if CASES[name][3]:  # only the float island of a layer norm stays on the CPU
        assert sorted(r.split(":")[0] for r in result.reasons) == ["DEQUANTIZE", "NEG",
                                                                   "QUANTIZE"]
    else:
        assert result.cpu_operators == 0, result.reasons
    assert result.cycles > 0


def _versions(data: bytes) -> dict[int, int]:
    from perfsage.graph.schema import fb

    model = fb.ModelT.InitFromPackedBuf(data, 0)
    return {c.builtinCode: c.version for c in model.operatorCodes}


def test_operator_versions_follow_the_converter() -> None:
    from perfsage.graph.schema import fb

    assert _versions(_build("grouped_native", "int8"))[fb.BuiltinOperator.CONV_2D] == 6
    assert _versions(_build("grouped_split", "int8"))[fb.BuiltinOperator.CONV_2D] == 3
    assert _versions(_build("channel_shuffle", "int8"))[fb.BuiltinOperator.TRANSPOSE] == 4
    assert _versions(_build("transpose", "int8"))[fb.BuiltinOperator.TRANSPOSE] == 2
    assert _versions(_build("dense_keep_dims", "int8"))[fb.BuiltinOperator.FULLY_CONNECTED] == 5
    assert _versions(_build("dense_rows", "int8"))[fb.BuiltinOperator.FULLY_CONNECTED] == 4


def test_bad_arguments_name_the_layer() -> None:
    b = ModelBuilder()
    x = b.input(IMG)
    with pytest.raises(UsageError, match="split: cannot split axis 3"):
        b.split(x, 3)
    with pytest.raises(UsageError, match="transpose: perm"):
        b.transpose(x, (0, 1, 1, 3))
    with pytest.raises(UsageError, match="grouped_conv2d: groups 3"):
        b.grouped_conv2d(x, 16, 3)
    with pytest.raises(UsageError, match="mul_const: constant must be"):
        b.mul_const(x, [1.0, 2.0])
    with pytest.raises(UsageError, match="batch_matmul: inner dimensions"):
        t = b.reshape(x, (8, 8, 16))
        b.batch_matmul(t, t)
