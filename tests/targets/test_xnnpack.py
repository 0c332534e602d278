"""The operator types LiteRT's XNNPACK delegate leaves to LiteRT, against LiteRT itself."""

from __future__ import annotations

import pytest

from perfsage.builder import ModelBuilder
from perfsage.graph import read_model
from perfsage.targets.xnnpack import UNDELEGATED_INT8, delegated_operators


def _every_kind() -> bytes:
    """An int8 graph with convolutions, pools, activations, attention and layer norm."""
    b = ModelBuilder(seed=3)
    x = b.conv2d(b.input((1, 16, 16, 8)), 16, 3)
    x = b.depthwise_conv2d(x, 3)
    x = b.hard_swish(b.avg_pool(x, 2))
    y = b.relu(b.max_pool(b.conv2d(x, 16, 1), 3, 1, "same"))
    x = b.add(b.gelu(x), b.logistic(y))
    tokens = b.reshape(x, (1, 64, 16))
    tokens = b.layer_norm(tokens)
    scores = b.softmax(b.batch_matmul(tokens, tokens, adj_y=True))
    x = b.batch_matmul(scores, tokens)
    x = b.concat([b.tanh(x), b.mul(x, x)])
    x = b.dense(b.reshape(b.mean(b.reshape(x, (1, 8, 8, 32))), (1, 32)), 10)
    return b.build([b.softmax(x)])


@pytest.mark.litert
def test_the_table_names_what_litert_leaves_undelegated():
    """Every operator of the graph: XNNPACK leaves it to LiteRT exactly when its type is in
    the table (the table's types and the delegated ones each occur)."""
    from ai_edge_litert.interpreter import Interpreter

    data = _every_kind()
    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    taken = delegated_operators(interpreter)
    ops = read_model(data).subgraphs[0].operators
    types = {op.name for op in ops}
    assert {"SOFTMAX", "GELU", "HARD_SWISH", "AVERAGE_POOL_2D", "RELU", "BATCH_MATMUL",
            "RSQRT", "SQUARED_DIFFERENCE"} <= types
    assert types - UNDELEGATED_INT8 - {"ADD"}  # ADD: the layer norm's epsilon is left alone
    for op in ops:
        if op.name == "ADD":
            continue
        assert (op.index not in taken) == (op.name in UNDELEGATED_INT8), op.name
