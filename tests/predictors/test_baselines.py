"""The GBDT and BRP-NAS GCN baselines: their inputs are what they claim, and they learn.

Each learning test uses a synthetic relation a constant cannot fit (latency doubles with
every CONV_2D), so a baseline that ignores its inputs fails.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from perfsage.graph import read_model
from perfsage.predictors.baselines.brp_nas_gcn import (
    GLOBAL_TYPE,
    BrpNasGCN,
    _prepare,
    normalised_adjacency,
)
from perfsage.predictors.baselines.gbdt import SUMMARY_FEATURES, GradientBoosted, summary_features
from perfsage.predictors.features import (
    GLOBAL_FEATURES,
    NODE_FEATURES,
    OP_TYPES,
    GraphFeatures,
    featurize,
)
from perfsage.predictors.graphset import GraphSet

EXAMPLE = Path(__file__).parents[2] / "examples" / "models" / "ds_cnn_s_kws_int8.tflite"
_CHAIN_TYPES = [OP_TYPES.index(t) for t in ("CONV_2D", "ADD", "RELU", "RESHAPE")]


def _chain(types: list[int]) -> GraphFeatures:
    """A chain of operators of the given types, with no shapes or costs."""
    n = len(types)
    return GraphFeatures(np.array(types, dtype=np.int64),
                         np.zeros((n, len(NODE_FEATURES)), dtype=np.float32),
                         np.array([np.arange(n - 1), np.arange(1, n)], dtype=np.int64),
                         np.zeros(len(GLOBAL_FEATURES), dtype=np.float32))


def _synthetic(count: int, seed: int) -> GraphSet:
    """Chains of 10 random operators; latency_ms = 2 ** (number of CONV_2D)."""
    rng = np.random.default_rng(seed)
    graphs = [_chain(list(rng.choice(_CHAIN_TYPES, size=10))) for _ in range(count)]
    convs = np.array([(g.op_types == OP_TYPES.index("CONV_2D")).sum() for g in graphs])
    return GraphSet(graphs, {"latency_ms": 2.0 ** convs, "flash_kib": np.full(count, 3.0)},
                    np.full(count, "synthetic"), np.array([f"{i:08x}" for i in range(count)]),
                    np.arange(count), "synthetic-target")


def _mape(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(pred / true - 1)) * 100)


def test_summary_features_count_operators_of_a_real_model():
    model = read_model(EXAMPLE)
    row = summary_features(featurize(model))
    assert row.shape == (len(SUMMARY_FEATURES),)
    counts = Counter(op.opcode for op in model.main.operators)
    assert counts["CONV_2D"] == 5  # the file is the one this test was written against
    for opcode, n in counts.items():
        assert np.expm1(row[SUMMARY_FEATURES.index(f"count_{opcode}")]) == pytest.approx(n)
    assert row[SUMMARY_FEATURES.index("count_ADD")] == 0
    # Per-type MACs add up to the model's MACs.
    macs = sum(np.expm1(row[SUMMARY_FEATURES.index(f"macs_{t}")]) for t in counts)
    total = np.expm1(row[SUMMARY_FEATURES.index("global_macs")])
    assert macs == pytest.approx(total, rel=1e-4)


def test_gcn_adjacency_joins_a_global_node_to_all_and_is_symmetric_normalised():
    g = _chain([0, 1, 2, 3])
    a = normalised_adjacency(g)
    assert a.shape == (5, 5)
    np.testing.assert_allclose(a, a.T)
    assert (a[0] > 0).all()  # the global node sees every operator, and itself
    # D^-1/2 (A + I) D^-1/2: operator 0 has neighbours {itself, global, operator 1}.
    binary = (a > 0).astype(float)
    assert binary[1].tolist() == [1, 1, 1, 0, 0]
    d = binary.sum(axis=1)
    np.testing.assert_allclose(a, binary / np.sqrt(np.outer(d, d)))
    types, rows, cols, weights = _prepare(g)
    assert types[0] == GLOBAL_TYPE and types[1:].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(weights, a[rows, cols])


def test_gcn_sees_no_shapes():
    g = _chain([0, 1, 2])
    shaped = GraphFeatures(g.op_types, np.ones_like(g.nodes), g.edges, np.ones_like(g.globals))
    for x, y in zip(_prepare(g), _prepare(shaped), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("predictor", [
    GradientBoosted(n_estimators=200, min_child_samples=5),
    BrpNasGCN(hidden=32, layers=2, epochs=40, patience=40, lr=3e-3),
], ids=["gbdt", "brp-nas-gcn"])
def test_baseline_learns_a_relation_a_constant_cannot(predictor):
    train, val, test = _synthetic(240, 0), _synthetic(60, 1), _synthetic(100, 2)
    pred = predictor.fit(train, val).predict(test.graphs)
    constant = np.exp(np.log(train.labels["latency_ms"]).mean())
    baseline = _mape(np.full(len(test), constant), test.labels["latency_ms"])
    assert baseline > 50
    assert _mape(pred["latency_ms"], test.labels["latency_ms"]) < baseline / 3
    np.testing.assert_array_equal(pred["flash_kib"], 3.0)
