"""The block predictor: the splitter on known graphs, per-block costs, Vela per-layer labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perfsage.builder import ModelBuilder
from perfsage.graph import read_model
from perfsage.predictors.block.features import BLOCK_FEATURES, graph_blocks
from perfsage.predictors.block.split import split
from perfsage.predictors.features import featurize

TARGET = "ethos-u55-128"
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def _blocks(b: ModelBuilder, out) -> tuple[list[list[str]], object]:
    """Opcode lists of the blocks of a built model, and the split itself."""
    model = read_model(b.build([out]))
    s = split(featurize(model))
    ops = model.main.operators
    return [[ops[i].opcode for i in block] for block in s.blocks], s


def test_chain_fuses_the_activation_into_its_convolution():
    b = ModelBuilder()
    x = b.input((1, 16, 16, 4))
    y = b.conv2d(b.relu(b.conv2d(x, 8)), 8)
    blocks, s = _blocks(b, y)
    assert blocks == [["CONV_2D", "RELU"], ["CONV_2D"]]
    assert not s.in_unit.any() and not s.live_bytes.any()


def test_residual_add_heads_its_own_block_inside_a_unit():
    b = ModelBuilder()
    x = b.conv2d(b.input((1, 16, 16, 4)), 8)
    y = b.conv2d(b.conv2d(x, 8, activation="relu"), 8)
    blocks, s = _blocks(b, b.relu(b.add(y, x)))
    assert blocks == [["CONV_2D"], ["CONV_2D"], ["CONV_2D"], ["ADD", "RELU"]]
    # The two convolutions and the ADD form the residual unit; the skip tensor (the first
    # convolution's 16x16x8 int8 output) is live across the second and third.
    assert s.in_unit.tolist() == [False, True, True, True, False]
    assert s.unit_size.tolist() == [0, 3, 3, 3, 0]
    np.testing.assert_allclose(s.live_bytes, [0, 0, 2048, 0, 0], rtol=1e-4)


def test_inverted_residual_block():
    """MobileNetV2: 1x1 expand (+ separate activation), depthwise, 1x1 project, ADD."""
    b = ModelBuilder()
    x = b.conv2d(b.input((1, 16, 16, 3)), 8, stride=2)
    e = b.hard_swish(b.conv2d(x, 48, kernel=1))
    d = b.depthwise_conv2d(e, activation="relu6")
    p = b.conv2d(d, 8, kernel=1)
    blocks, s = _blocks(b, b.add(x, p))
    assert blocks == [["CONV_2D"], ["CONV_2D", "HARD_SWISH"], ["DEPTHWISE_CONV_2D"],
                      ["CONV_2D"], ["ADD"]]
    assert s.in_unit.tolist() == [False, True, True, True, True, True]
    assert sorted(i for block in s.blocks for i in block) == list(range(6))


def test_blocks_of_real_models_cover_every_operator_once():
    for path in EXAMPLES:
        g = featurize(read_model(path))
        gb = graph_blocks(g)
        flat = [i for block in gb.split.blocks for i in block]
        assert sorted(flat) == list(range(len(g.op_types))), path
        assert gb.x.shape == (len(gb.split.blocks), len(BLOCK_FEATURES))
        assert np.isfinite(gb.x).all()
        assert len(gb.member_type) == len(g.op_types) - len(gb.split.blocks)


@pytest.fixture(scope="module")
def fitted(labelled):
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.registry import get_predictor

    sets = split_sets(load_graphset(labelled, TARGET, workers=1))
    return get_predictor("block", epochs=3, hidden=16).fit(sets["train"], sets["val"]), sets


def test_block_costs_add_up_to_the_prediction(fitted):
    predictor, sets = fitted
    graphs = sets["test"].graphs[:5]
    pred = predictor.predict(graphs)
    for i, g in enumerate(graphs):
        costs = predictor.block_costs(g)
        assert len(costs["costs"]["latency_ms"]) == len(costs["blocks"])
        for m in ("latency_ms", "npu_cycles", "energy_mj", "flash_kib"):
            assert not costs["peak"][m]
            total = costs["costs"][m].sum() + costs["overhead"][m]
            assert total == pytest.approx(pred[m][i], rel=1e-6)
        # Peak memory is (about) the hungriest block plus the overhead, never the sum.
        sram = costs["costs"]["sram_kib"]
        assert costs["peak"]["sram_kib"]
        assert sram.max() <= (pred["sram_kib"][i] - costs["overhead"]["sram_kib"]) * (1 + 1e-6)
        assert pred["sram_kib"][i] == pytest.approx(costs["total"]["sram_kib"], rel=1e-6)


def _small_net() -> bytes:
    b = ModelBuilder()
    x = b.conv2d(b.input((1, 16, 16, 3)), 8, activation="relu")
    y = b.depthwise_conv2d(x)
    return b.build([b.softmax(b.dense(b.reshape(b.add(x, y), (1, -1)), 10))])


def test_vela_per_layer_cycles_add_up_to_the_labels():
    from perfsage.predictors.block.vela_layers import per_operator
    from perfsage.targets.registry import get_target

    data = _small_net()
    cycles = per_operator(data, TARGET)
    labels = get_target(TARGET).measure(data)
    assert cycles.shape == (len(read_model(data).main.operators), 2)
    assert cycles[:, 1].sum() == labels["npu_cycles"]
    assert (cycles[:, 0] > 0).sum() >= 4  # not all charged to one operator


def test_per_layer_supervision_trains(labelled, tmp_path):
    from perfsage.predictors.block.vela_layers import block_targets, collect
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.registry import get_predictor

    sets = split_sets(load_graphset(labelled, TARGET, workers=1))
    train = sets["train"]
    path = collect(labelled, TARGET, train.model_ids[:6].tolist(), tmp_path / "layers.npz")
    splits = [split(g) for g in train.graphs]
    y = block_targets(path, train.model_ids, train.labels, splits, list(train.labels))
    lat = list(train.labels).index("latency_ms")
    first = len(splits[0].blocks)
    # Per-block latencies of a collected model add up to its label; uncollected are NaN.
    assert np.nansum(y[:first, lat]) == pytest.approx(train.labels["latency_ms"][0], rel=1e-5)
    assert np.isnan(y[-1]).all()
    predictor = get_predictor("block", epochs=2, hidden=16, layer_labels=str(path))
    pred = predictor.fit(train, sets["val"]).predict(sets["test"].graphs)
    assert np.isfinite(pred["latency_ms"]).all()
