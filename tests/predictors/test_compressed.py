"""Predictions for models with compressed weights: statistics, corrections, against Vela."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perfsage.graph import read_model
from perfsage.graph.weight_stats import weight_stats
from perfsage.udc.compress import compress

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
MOBILENET = EXAMPLES / "mobilenet_v2_0.35_96_int8.tflite"
KWS = EXAMPLES / "ds_cnn_s_kws_int8.tflite"
TARGET = "ethos-u55-128"


def test_statistics_see_pruning_and_clustering():
    data = MOBILENET.read_bytes()
    dense = weight_stats(read_model(data))
    small = weight_stats(read_model(compress(data, 0.75, 3)))
    weighted = dense.elements > 0
    assert not dense.is_compressed() and small.is_compressed()
    assert (dense.zero_fraction[weighted] < 0.05).all()
    assert np.allclose(small.zero_fraction[weighted], 0.75, atol=0.02)
    big = weighted & (small.channel_size >= 128)
    assert big.any() and (small.channel_distinct[big] <= 8).all()
    assert (small.entropy_bits[weighted] < dense.entropy_bits[weighted]).all()


@pytest.mark.parametrize(("source", "sparsity", "bits", "per_layer", "expected"), [
    (MOBILENET, 0.0, 8, None, False), (KWS, 0.0, 8, None, False),  # dense
    (MOBILENET, 0.5, 8, None, True), (KWS, 0.12, 8, None, True),  # pruned
    (MOBILENET, 0.0, 4, None, True), (MOBILENET, 0.0, 5, None, True),  # clustered
    (MOBILENET, 0.0, 6, None, False),  # 64 values per channel: more than clustering allows
    (MOBILENET, 0.0, 8, {0: (0.5, 8)}, False),  # one small pruned layer: under the share
    (MOBILENET, 0.0, 8, {-1: (0.0, 4)}, True),  # one clustered layer, enough of the weights
])
def test_is_compressed_decides_as_the_full_statistics(source, sparsity, bits, per_layer,
                                                      expected):
    from perfsage.graph.weight_stats import is_compressed, weight_tensors
    from perfsage.udc.compress import weight_layers

    data = source.read_bytes()
    if per_layer is not None:  # keyed by position among the weight layers (-1: the last)
        layers = weight_layers(data)
        per_layer = {layers[k].op_index: v for k, v in per_layer.items()}
    model = read_model(compress(data, sparsity, bits, per_layer))
    assert weight_stats(model).is_compressed() is expected
    assert is_compressed(model) is expected
    assert is_compressed(model, weight_tensors(model)) is expected


def test_is_compressed_sees_clustering_alone():
    from perfsage.graph.weight_stats import is_compressed

    model = read_model(compress(MOBILENET.read_bytes(), 0.0, 4))
    stats = weight_stats(model)
    assert not stats.pruned.any() and stats.clustered.any()
    assert is_compressed(model) and not is_compressed(read_model(MOBILENET.read_bytes()))


@pytest.mark.parametrize("space", ["keyword-spotting", "image-classification", "zoo"])
def test_builder_models_are_dense(space):
    from perfsage.spaces import get_space

    built = get_space(space)
    for i in range(4):
        assert not weight_stats(read_model(built.build(built.sample_seeded(0, i)))).is_compressed()


def test_compressed_models_are_corrected_and_dense_ones_are_not():
    from perfsage.api import pipeline

    data = MOBILENET.read_bytes()
    dense, pruned, clustered = pipeline(TARGET).predict(
        [data, compress(data, 0.5, 8), compress(data, 0.9, 2)], level=None)
    assert "compressed-weights" not in {n.kind for n in dense.notes}
    for found in (pruned, clustered):
        assert "compressed-weights" in {n.kind for n in found.notes}
        for metric in ("flash_kib", "latency_ms", "energy_mj"):
            assert 0 < found.figures[metric] < dense.figures[metric]
        assert found.figures["npu_cycles"] == pytest.approx(dense.figures["npu_cycles"])
    assert clustered.figures["flash_kib"] < pruned.figures["flash_kib"]


@pytest.mark.vela
@pytest.mark.parametrize(("sparsity", "bits"), [(0.5, 8), (0.9, 2)])
def test_predictions_follow_vela(sparsity, bits):
    from perfsage.api import pipeline
    from perfsage.targets.registry import get_target

    data = compress(MOBILENET.read_bytes(), sparsity, bits)
    [found] = pipeline(TARGET).predict([data], level=None)
    measured = get_target(TARGET).measure(data)
    assert found.figures["flash_kib"] == pytest.approx(measured["flash_kib"], rel=0.05)
    assert found.figures["latency_ms"] == pytest.approx(measured["latency_ms"], rel=0.15)


def _peaked(data: bytes, seed: int = 0) -> bytes:
    """``data`` with every convolution and dense kernel redrawn normal, peaked at zero.

    The largest value is 127, as int8 quantisation of He-initialised or trained float
    weights makes it; the builder's own are triangular, flatter.
    """
    from helpers.tflite_edit import edit

    rng = np.random.default_rng(seed)

    def change(model) -> None:
        graph = model.subgraphs[0]
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) not in (3, 4, 9):
                continue  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED
            buffer = model.buffers[graph.tensors[op.inputs[1]].buffer]
            n = len(buffer.data)
            draw = rng.standard_normal(n)
            buffer.data = np.clip(np.rint(draw / np.abs(draw).max() * 127), -127, 127).astype(
                np.int8).view(np.uint8)

    return edit(data, change)


@pytest.mark.vela
def test_dense_weights_unlike_the_builders_are_priced_as_vela_stores_them():
    from perfsage.api import pipeline
    from perfsage.spaces import get_space
    from perfsage.targets.registry import get_target

    space = get_space("image-classification")
    built = space.build(space.sample_seeded(0, 3))
    peaked = _peaked(built)
    own, theirs = pipeline(TARGET).predict([built, peaked], level=None)
    measured = get_target(TARGET).measure(peaked)
    assert "compressed-weights" not in {n.kind for n in theirs.notes}  # dense, not pruned
    assert theirs.figures["flash_kib"] < 0.95 * own.figures["flash_kib"]
    assert theirs.figures["flash_kib"] == pytest.approx(measured["flash_kib"], rel=0.03)
    assert theirs.figures["latency_ms"] <= own.figures["latency_ms"]


def test_the_time_saved_keeps_the_npu_cycles():
    """Fewer weight bytes never save a pass's own NPU cycles: a correction that would take
    the latency below them is scaled down, per operator alike, to stop there; a network
    figure already below them is corrected as it is."""
    from perfsage.predictors.compressed import Correction

    fix = Correction(None, 0.0, {"latency_ms": np.array([6.0, 2.0]),
                                 "energy_mj": np.array([1.0, 1.0])})
    row = {"latency_ms": 10.0, "energy_mj": 5.0}
    fix.limited(10.0, 4.0).apply(row)
    assert row == {"latency_ms": pytest.approx(4.0), "energy_mj": pytest.approx(3.0)}
    kept = fix.limited(10.0, 4.0).less["latency_ms"]
    assert kept == pytest.approx([4.5, 1.5])  # the same share off every operator
    assert fix.limited(10.0, 1.0) is fix  # room enough: unchanged
    assert fix.limited(3.0, 4.0) is fix  # the network is below already


@pytest.mark.vela
def test_a_pruned_fully_connected_layer_keeps_its_npu_time_on_u65():
    """A batch-1 FULLY_CONNECTED on Ethos-U65 takes one NPU cycle per ~5.7 weights however
    well they compress: pruned to 90 % and clustered to 4 values, Vela's latency is its NPU
    cycles' time, and the prediction no longer falls below the predicted NPU cycles."""
    from perfsage.api import pipeline
    from perfsage.builder import ModelBuilder
    from perfsage.targets.hardware import hardware
    from perfsage.targets.registry import get_target

    b = ModelBuilder(seed=0)
    data = compress(b.build([b.dense(b.input((1, 1024)), 512)]), 0.9, 2)
    target = "ethos-u65-256"
    measured = get_target(target).measure(data)
    clock = hardware(target).cycles_to_ms
    assert measured["latency_ms"] == pytest.approx(clock(measured["npu_cycles"]), rel=0.02)
    [found] = pipeline(target).predict([data], level=None)
    assert found.figures["latency_ms"] >= clock(found.figures["npu_cycles"]) * 0.999


def _shared_dense(layers: int) -> bytes:
    """``layers`` dense 64x64 layers in a chain, every one reading the first one's weights."""
    from helpers.tflite_edit import edit
    from perfsage.builder import ModelBuilder

    b = ModelBuilder(seed=0)
    x = b.input((1, 64))
    for _ in range(layers):
        x = b.dense(x, 64)

    def share(model) -> None:
        ops = model.subgraphs[0].operators
        for op in ops[1:]:
            op.inputs[1] = ops[0].inputs[1]

    return edit(b.build([x]), share)


@pytest.mark.vela
def test_shared_weights_are_stored_once_their_scales_per_operator():
    """An unrolled recurrent cell reads one weight tensor at every step: Vela stores the
    weights once and each operator's biases and scales again (640 bytes per 64-channel
    step here), and so does the flash prediction (an unrolled LSTM was -58 % before)."""
    from perfsage.api import pipeline
    from perfsage.targets.registry import get_target

    target = get_target(TARGET)
    one, eight = _shared_dense(1), _shared_dense(8)
    measured = [target.measure(d)["flash_kib"] for d in (one, eight)]
    predicted = [f.figures["flash_kib"] for f in pipeline(TARGET).predict([one, eight],
                                                                         level=None)]
    assert (measured[1] - measured[0]) * 1024 == pytest.approx(7 * 640)
    assert predicted[1] == pytest.approx(measured[1], rel=0.05)
    assert predicted[0] == pytest.approx(measured[0], rel=0.05)


@pytest.mark.vela
def test_identical_lookup_tables_are_stored_once():
    """Eight LOGISTICs in a chain: the first reads the input's quantisation, the other
    seven the same sigmoid output's, so Vela stores two 256-entry tables; flash_overhead
    counts the same two."""
    from perfsage.builder import ModelBuilder
    from perfsage.predictors.compressed import (
        COMMAND_BYTES_PER_OPERATOR,
        LUT_BYTES,
        flash_overhead,
    )
    from perfsage.targets.registry import get_target

    b = ModelBuilder(seed=0)
    x = b.input((1, 64))
    for _ in range(8):
        x = b.logistic(x)
    data = b.build([x])
    assert get_target(TARGET).measure(data)["flash_kib"] * 1024 == 2 * LUT_BYTES
    model = read_model(data)
    on_npu = np.ones(len(model.main.operators), dtype=bool)
    assert flash_overhead(model, on_npu) == 8 * COMMAND_BYTES_PER_OPERATOR + 2 * LUT_BYTES


def test_a_dilation_beyond_the_hardware_is_spread_into_the_kernel():
    """Dilation 8 on a 3x3 kernel: hardware dilation 2, taps 4 apart, 9x9 stored, the zero
    point between the taps; odd factors spread whole; 2 and less untouched."""
    from perfsage.targets.weight_encoding import dilated_kernel

    w = np.arange(1, 1 + 2 * 3 * 3 * 4, dtype=np.int8).reshape(2, 3, 3, 4)
    out = dilated_kernel(w, np.array([5, 7]), 0, (8, 8))
    assert out.shape == (2, 9, 9, 4)
    assert np.array_equal(out[:, ::4, ::4, :], w)
    assert set(np.unique(out[0][1:4, :, :])) == {5} and set(np.unique(out[1][1:4, :, :])) == {7}
    assert dilated_kernel(w, 0, 0, (3, 1)).shape == (2, 7, 3, 4)
    assert dilated_kernel(w, 0, 0, (2, 2)) is w


@pytest.mark.vela
def test_dilated_kernels_are_priced_as_vela_spreads_them():
    """A 3x3 convolution dilated by 8 is stored as a 9x9 kernel of mostly zero points:
    the flash prediction follows Vela (it saw a third of the bytes before)."""
    from perfsage.api import pipeline
    from perfsage.builder import ModelBuilder
    from perfsage.targets.registry import get_target

    b = ModelBuilder(seed=0)
    x = b.conv2d(b.input((1, 40, 40, 32)), 64, 3, dilation=8)
    data = b.build([b.conv2d(x, 64, 3, dilation=16)])
    measured = get_target(TARGET).measure(data)["flash_kib"]
    [found] = pipeline(TARGET).predict([data], level=None)
    assert found.figures["flash_kib"] == pytest.approx(measured, rel=0.08)


@pytest.mark.parametrize(("opcode", "shape", "expected"), [
    ("CONV_2D", (32, 3, 3, 3), False), ("CONV_2D", (64, 1, 1, 32), True),
    ("DEPTHWISE_CONV_2D", (1, 3, 3, 144), False), ("FULLY_CONNECTED", (1000, 1280), True),
    ("TRANSPOSE_CONV", (16, 3, 3, 8), False), ("CONV_2D", (17, 3, 3, 5), False)])
def test_dense_reference_from_expected_statistics_as_drawn(opcode, shape, expected):
    """The reference's expected histogram encodes to the bytes of weights actually drawn;
    where padding zeros could run (input channels or a depthwise window padded) it draws."""
    from perfsage.predictors.compressed import _dense_layers, _dense_stats
    from perfsage.targets.weight_encoding import (
        ohwi,
        stats_bytes,
        stream_stats,
        triangular_stats,
    )

    assert (triangular_stats(opcode, shape) is not None) == expected
    key = (opcode, shape, (1, 1))
    [layer] = _dense_layers([key])
    drawn = stats_bytes([stream_stats(*layer)], [ohwi(layer[0], layer[1]).shape[0]])
    assert (stats_bytes(*_dense_stats([key])) == drawn).all()
