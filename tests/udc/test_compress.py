"""Compression transforms on real models: what they change, what they keep, and that the
compressed models still run in LiteRT and compile with Vela."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perfsage.errors import UsageError
from perfsage.graph import read_model
from perfsage.udc.compress import (
    CompressionPlan,
    LayerCompression,
    apply_plan,
    compress,
    compress_values,
    weight_layers,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
KWS = EXAMPLES / "ds_cnn_s_kws_int8.tflite"
MOBILENET = EXAMPLES / "mobilenet_v2_0.35_96_int8.tflite"


def _channels(data: bytes, layer) -> np.ndarray:
    """A layer's int8 values in ``data``, one row per output channel."""
    values = np.frombuffer(data, np.int8, layer.size, layer.start).reshape(layer.shape)
    return np.moveaxis(values, layer.axis, 0).reshape(layer.shape[layer.axis], -1)


def _outside_weights(data: bytes, layers) -> bytes:
    """Every byte of the file but the weights'."""
    keep = np.ones(len(data), dtype=bool)
    for layer in layers:
        keep[layer.start:layer.start + layer.size] = False
    return np.frombuffer(data, np.uint8)[keep].tobytes()


@pytest.fixture(scope="module")
def mobilenet() -> bytes:
    return MOBILENET.read_bytes()


def test_weight_layers_are_the_convolutions_and_dense_layers(mobilenet):
    model = read_model(mobilenet)
    layers = weight_layers(mobilenet)
    weighted = [op for op in model.main.operators
                if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert [layer.op_index for layer in layers] == [op.index for op in weighted]
    for layer in layers:  # each span holds exactly the tensor's values
        tensor = model.main.tensors[layer.tensor]
        assert np.array_equal(_channels(mobilenet, layer).ravel(),
                              np.moveaxis(tensor.values().reshape(layer.shape), layer.axis,
                                          0).ravel())


@pytest.mark.parametrize(("sparsity", "bits"), [(0.5, 8), (0.75, 4), (0.9, 2), (0.0, 1)])
def test_pruning_and_clustering_reach_their_targets(mobilenet, sparsity, bits):
    out = compress(mobilenet, sparsity, bits)
    layers = weight_layers(mobilenet)
    assert len(out) == len(mobilenet)
    assert _outside_weights(out, layers) == _outside_weights(mobilenet, layers)
    for layer in layers:
        before, after = _channels(mobilenet, layer), _channels(out, layer)
        zero = layer.zero_points.reshape(-1, 1)
        # Pruning sets the share asked for (rounded to whole weights); clustering keeps it.
        assert abs((after == zero).mean() - sparsity) <= 1 / layer.size + 1e-9 or sparsity == 0
        assert max(len(np.unique(row)) for row in after) <= 2 ** bits
        assert ((before == zero) <= (after == zero)).all()  # a zero never comes back


def test_pruning_removes_the_smallest_magnitudes(mobilenet):
    layer = weight_layers(mobilenet)[5]
    before = _channels(mobilenet, layer).astype(np.int64)
    after = _channels(compress(mobilenet, 0.5, 8), layer).astype(np.int64)
    magnitude = np.abs(before) * layer.scales[:, None]
    pruned = (after == 0) & (before != 0)
    assert magnitude[pruned].max() <= magnitude[after != 0].min()
    assert np.array_equal(after[after != 0], before[after != 0])  # the rest untouched


def test_structured_pruning_zeroes_whole_channels(mobilenet):
    out = compress(mobilenet, 0.25, 8, structured=True)
    for layer in weight_layers(mobilenet):
        rows = _channels(out, layer)
        dead = (rows == 0).all(axis=1)
        assert dead.sum() >= round(0.25 * len(rows))


def _one_channel(values: list[int], bits: int) -> list[int]:
    """``values`` as one output channel clustered to ``2**bits`` values."""
    q = np.array([values], dtype=np.int8)
    layer = weight_layers(KWS.read_bytes())[0]
    single = layer.__class__(0, "FULLY_CONNECTED", 0, "w", q.shape, 0, 0, np.ones(1),
                             np.zeros(1, np.int64))
    return compress_values(q, single, LayerCompression(0.0, bits)).ravel().tolist()


def test_clustering_finds_the_groups_of_one_channel():
    assert _one_channel([1, 2, 3, 40, 41, 42] * 3, 1) == [2, 2, 2, 41, 41, 41] * 3
    # A zero point present is kept as one of the values.
    out = _one_channel([0, 0, 0, 5, 40, 41, 42], 1)
    assert out[:3] == [0, 0, 0] and set(out) == {0, 41}


def test_one_layer_compressed_alone(mobilenet):
    layers = weight_layers(mobilenet)
    target = layers[3]
    out = compress(mobilenet, per_layer={target.op_index: (0.9, 2)})
    by_name = compress(mobilenet, per_layer={target.name: [0.9, 2]})
    assert out == by_name
    for layer in layers:
        same = np.array_equal(_channels(out, layer), _channels(mobilenet, layer))
        assert same == (layer is not target)


def test_identity_leaves_the_bytes_alone(mobilenet):
    assert compress(mobilenet, 0.0, 8) == mobilenet
    assert compress(mobilenet, 0.6, 3) == compress(mobilenet, 0.6, 3)  # a pure function


def test_plan_json_round_trip():
    plan = CompressionPlan.of(0.5, 4, {"3": (0.9, 2), "conv/w": {"sparsity": 0.2, "bits": 8,
                                                                  "structured": True}})
    assert CompressionPlan.from_json(plan.as_json()) == plan
    assert 3 in plan.per_layer  # digits name an operator index


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sparsity": 0.96}, "sparsity must be a number from 0 to 0.95"),
    ({"sparsity": -0.1}, "sparsity must be"),
    ({"sparsity": float("nan")}, "sparsity must be"),
    ({"bits": 0}, "bits must be a whole number from 1 to 8"),
    ({"bits": 9}, "bits must be"),
    ({"bits": 2.5}, "bits must be"),
    ({"per_layer": {"no_such_layer": (0.5, 4)}}, "no weight layer 'no_such_layer'"),
    ({"per_layer": {999: (0.5, 4)}}, "no weight layer 999"),
    ({"per_layer": {0: (0.5, 4, True, 1)}}, "expected [sparsity, bits]"),
])
def test_bad_values_are_one_clear_error(kwargs, message):
    with pytest.raises(UsageError, match=None) as found:
        compress(KWS.read_bytes(), **kwargs)
    assert message in str(found.value)


def test_compressed_models_run_in_litert(mobilenet):
    from helpers.litert_run import outputs_on_random_input

    for data in (KWS.read_bytes(), mobilenet):
        out = outputs_on_random_input(apply_plan(data, CompressionPlan.of(0.75, 3)))
        assert all(o.size and np.isfinite(o.astype(np.float64)).all() for o in out)


@pytest.mark.vela
def test_vela_compiles_them_into_less_flash():
    from perfsage.targets.registry import get_target

    target = get_target("ethos-u55-128")
    data = KWS.read_bytes()
    dense = target.measure(data)
    for sparsity, bits in ((0.5, 8), (0.9, 2)):
        small = target.measure(compress(data, sparsity, bits))
        assert small["flash_kib"] < dense["flash_kib"]
        assert small["latency_ms"] <= dense["latency_ms"]
