"""Every layer, alone and in small chains: read back, run in LiteRT and TFLM, compile with Vela.

Each case lists the operators it must produce and the ones Vela (Ethos-U55) keeps on the
CPU for reasons of its own; no other operator may be rejected, least of all for its
quantisation.
"""

from __future__ import annotations

from collections.abc import Callable

import builder_checks as checks
import pytest

from perfsage.builder import ModelBuilder, TensorRef
from perfsage.graph import read_model


class Recorder:
    """Forwards to a ModelBuilder and remembers every tensor a layer returned."""

    def __init__(self, builder: ModelBuilder) -> None:
        self.builder = builder
        self.refs: list[TensorRef] = []

    def __getattr__(self, name: str) -> Callable:
        method = getattr(self.builder, name)

        def call(*args, **kwargs):
            out = method(*args, **kwargs)
            if isinstance(out, TensorRef) and name != "input":
                self.refs.append(out)
            return out

        return call


def _se(b, x):
    g = b.mean(x, (1, 2), keepdims=True)
    g = b.logistic(b.conv2d(g, 8, 1))
    return b.mul(x, g)


def _inverted_residual(b, x):
    h = b.conv2d(x, 48, 1, activation="relu6")
    h = b.depthwise_conv2d(h, 3, activation="relu6")
    h = b.conv2d(h, 8, 1)
    return b.add(x, h)


def _classifier(b, x):
    x = b.conv2d(x, 16, 3, stride=2, activation="relu")
    x = b.depthwise_conv2d(x, 3, activation="relu")
    x = b.max_pool(x, 2)
    x = b.reshape(x, (1, -1))
    return b.softmax(b.dense(x, 10))


IMG = (1, 16, 16, 8)
# name: (input shape, layers, operators written, operators Vela leaves on the CPU)
CASES: dict[str, tuple] = {
    "conv": (IMG, lambda b, x: b.conv2d(x, 8, 3, stride=2, activation="relu"), ["CONV_2D"], []),
    "conv_valid_dilated": (IMG, lambda b, x: b.conv2d(x, 8, (3, 5), padding="valid", dilation=2,
                                                      activation="relu6"), ["CONV_2D"], []),
    "conv_no_bias": (IMG, lambda b, x: b.conv2d(x, 4, 1, bias=False), ["CONV_2D"], []),
    "depthwise": (IMG, lambda b, x: b.depthwise_conv2d(x, 3, stride=2, activation="relu6"),
                  ["DEPTHWISE_CONV_2D"], []),
    "depthwise_dilated": (IMG, lambda b, x: b.depthwise_conv2d(x, 3, padding="valid",
                                                               dilation=2),
                          ["DEPTHWISE_CONV_2D"], []),
    "depthwise_multiplier_1ch": ((1, 16, 16, 1), lambda b, x: b.depthwise_conv2d(
        x, 3, depth_multiplier=4), ["DEPTHWISE_CONV_2D"], []),
    "depthwise_multiplier": (IMG, lambda b, x: b.depthwise_conv2d(x, 5, depth_multiplier=2),
                             ["DEPTHWISE_CONV_2D"], []),
    "dense": ((1, 32), lambda b, x: b.dense(x, 16, activation="relu"),
              ["FULLY_CONNECTED"], []),
    "add": (IMG, lambda b, x: b.add(b.conv2d(x, 8, 1), x, activation="relu"),
            ["CONV_2D", "ADD"], []),
    "mul": (IMG, lambda b, x: b.mul(x, b.conv2d(x, 8, 1)), ["CONV_2D", "MUL"], []),
    "mul_broadcast_se": (IMG, _se, ["MEAN", "CONV_2D", "LOGISTIC", "MUL"], []),
    "concat_channels": (IMG, lambda b, x: b.concat([x, b.conv2d(x, 4, 1, activation="relu")]),
                        ["CONV_2D", "CONCATENATION"], []),
    "concat_height": (IMG, lambda b, x: b.concat([b.conv2d(x, 8, 1), x], axis=1),
                      ["CONV_2D", "CONCATENATION"], []),
    "avg_pool": (IMG, lambda b, x: b.avg_pool(x, 3, stride=2, padding="same"),
                 ["AVERAGE_POOL_2D"], []),
    "max_pool": (IMG, lambda b, x: b.max_pool(x, (2, 3), stride=(2, 1)), ["MAX_POOL_2D"], []),
    "mean_keepdims": (IMG, lambda b, x: b.mean(x, (1, 2)), ["MEAN"], []),
    "mean_flat": (IMG, lambda b, x: b.mean(x, (1, 2), keepdims=False), ["MEAN"], []),
    "pad": (IMG, lambda b, x: b.pad(x, ((0, 0), (1, 2), (2, 1), (0, 0))), ["PAD"], []),
    "resize_nearest": (IMG, lambda b, x: b.resize(x, (32, 32)), ["RESIZE_NEAREST_NEIGHBOR"], []),
    "resize_bilinear": (IMG, lambda b, x: b.resize(x, (32, 32), method="bilinear"),
                        ["RESIZE_BILINEAR"], []),
    # Vela upsamples by 2x, 4x or 8x only.
    "resize_odd": (IMG, lambda b, x: b.resize(x, (24, 24)), ["RESIZE_NEAREST_NEIGHBOR"],
                   ["RESIZE_NEAREST_NEIGHBOR"]),
    # Not an Ethos-U55 operator at all.
    "depth_to_space": (IMG, lambda b, x: b.depth_to_space(x, 2), ["DEPTH_TO_SPACE"],
                       ["DEPTH_TO_SPACE"]),
    "reshape": (IMG, lambda b, x: b.reshape(x, (1, 16, -1)), ["RESHAPE"], []),
    "softmax": ((1, 10), lambda b, x: b.softmax(x), ["SOFTMAX"], []),
    "softmax_1000": ((1, 64), lambda b, x: b.softmax(b.dense(x, 1000)),
                     ["FULLY_CONNECTED", "SOFTMAX"], []),
    "logistic": (IMG, lambda b, x: b.logistic(x), ["LOGISTIC"], []),
    "hard_swish": (IMG, lambda b, x: b.hard_swish(b.conv2d(x, 8, 3)),
                   ["CONV_2D", "HARD_SWISH"], []),
    "relu": (IMG, lambda b, x: b.relu(x), ["RELU"], []),
    "relu6": (IMG, lambda b, x: b.relu6(b.conv2d(x, 8, 1)), ["CONV_2D", "RELU6"], []),
    "inverted_residual": (IMG, _inverted_residual, ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                                                     "ADD"], []),
    "classifier": ((1, 32, 32, 3), _classifier, ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D",
                                                  "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"], []),
    "decoder": (IMG, lambda b, x: b.conv2d(b.resize(b.depth_to_space(b.conv2d(
        x, 32, 1, activation="relu"), 2), (64, 64), method="bilinear"), 3, 3),
        ["CONV_2D", "DEPTH_TO_SPACE", "RESIZE_BILINEAR", "CONV_2D"], ["DEPTH_TO_SPACE"]),
}


def _build(name: str, dtype: str, seed: int = 0) -> tuple[bytes, Recorder]:
    shape, layers, _, _ = CASES[name]
    b = Recorder(ModelBuilder(seed=seed, dtype=dtype))
    out = layers(b, b.input(shape))
    return b.build([out]), b


def _check_read_back(data: bytes, rec: Recorder, name: str, int8: bool) -> None:
    model = read_model(data)
    main = model.main
    assert [op.opcode for op in main.operators] == CASES[name][2]
    assert [main.tensors[op.outputs[0]].shape for op in main.operators] == [
        r.shape for r in rec.refs]
    assert model.signatures == ("serving_default",)
    for t in main.tensors:
        if not int8 or (t.dtype == "int32" and t.quantization is None):
            assert t.dtype in ("float32", "int32") and t.quantization is None, t.name
            continue
        assert t.quantization is not None, t.name
        if t.name.endswith("/weights"):
            axis = 3 if "depthwise" in t.name else 0
            assert t.quantization.axis == axis and len(t.quantization.scale) == t.shape[axis]
            assert set(t.quantization.zero_point) == {0}
        assert min(t.quantization.scale) > 1e-6, t.name


@pytest.mark.parametrize("name", list(CASES))
def test_reads_back_and_runs(name: str) -> None:
    """int8 and float32 builds read back as built; both run in LiteRT and TFLM alike."""
    outputs = {}
    for dtype in ("int8", "float32"):
        data, rec = _build(name, dtype)
        _check_read_back(data, rec, name, dtype == "int8")
        inputs = checks.random_inputs(data)
        out = checks.litert(data, inputs)
        checks.assert_tflm_matches(data, inputs, out)
        outputs[dtype] = (data, out)
    int8_data, int8_out = outputs["int8"]
    checks.assert_close_to_float(int8_out, int8_data, outputs["float32"][1])


@pytest.mark.parametrize("name", list(CASES))
def test_vela_runs_supported_operators_on_npu(name: str, tmp_path) -> None:
    data, _ = _build(name, "int8")
    result = checks.vela(data, tmp_path)
    expected_cpu = CASES[name][3]
    assert sorted(r.split(":")[0] for r in result.reasons) == sorted(expected_cpu), result.reasons
    assert result.cpu_operators == len(expected_cpu)
    if len(expected_cpu) < len(CASES[name][2]):
        assert result.cycles > 0
