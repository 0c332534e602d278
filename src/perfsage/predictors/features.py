"""Graph features for the predictors, computed from the IR alone (NumPy, no torch).

Nothing here knows which search space a model came from: a node is an operator described
by its type, options, tensor shapes, bit widths and costs; an edge is a tensor from its
producer to a consumer. Operator types outside ``OP_TYPES`` share one "unknown" embedding
row, and their shapes and byte counts still describe them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from perfsage.graph import Model, Operator, Subgraph, analyze
from perfsage.graph.analysis import LayerCost, ModelCost
from perfsage.graph.ir import TensorSizes, element_count

FEATURE_VERSION = 1

#: Operator types with their own embedding; anything else maps to index len(OP_TYPES).
OP_TYPES = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL",
    "CONV_3D", "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM",
    "CONCATENATION", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "MEAN", "SUM",
    "REDUCE_MAX", "SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "HARD_SWISH", "GELU", "RELU",
    "RELU6", "LEAKY_RELU", "PRELU", "ELU", "EXP", "RSQRT", "SQRT", "RESHAPE", "SQUEEZE",
    "EXPAND_DIMS", "TRANSPOSE", "PAD", "PADV2", "MIRROR_PAD", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "QUANTIZE", "DEQUANTIZE",
    "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "GATHER", "TILE",
    "CAST", "ARG_MAX", "L2_NORMALIZATION",
)
UNKNOWN_TYPE = len(OP_TYPES)
_TYPE_INDEX = {name: i for i, name in enumerate(OP_TYPES)}
ACTIVATIONS = ("RELU", "RELU6", "RELU_N1_TO_1", "TANH")

NODE_FEATURES = (
    "kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w",
    "depth_multiplier", "padding_same", *(f"act_{a.lower()}" for a in ACTIVATIONS),
    "in_h", "in_w", "in_c", "in_elements", "out_h", "out_w", "out_c", "out_elements",
    "weight_elements", "activation_inputs", "outputs", "in_bits", "weight_bits", "out_bits",
    "macs", "params", "param_bytes", "input_bytes", "output_bytes", "consumers",
)
GLOBAL_FEATURES = (
    "macs", "params", "param_bytes", "peak_activation_bytes", "activation_bytes",
    "model_bytes", "operators", "input_bytes", "output_bytes",
)
# Counts and sizes spanning orders of magnitude enter as log1p.
_LOG = {"kernel_h", "kernel_w", "in_h", "in_w", "in_c", "in_elements", "out_h", "out_w",
        "out_c", "out_elements", "weight_elements", "macs", "params", "param_bytes",
        "input_bytes", "output_bytes", "consumers"}
_LOG_MASK = np.array([name in _LOG for name in NODE_FEATURES])


@dataclass(slots=True)
class GraphFeatures:
    """One graph ready for a predictor: node types, node features, edges, globals."""

    op_types: np.ndarray  # int64 [nodes]
    nodes: np.ndarray  # float32 [nodes, len(NODE_FEATURES)], log-scaled, not yet standardised
    edges: np.ndarray  # int64 [2, edges], producer -> consumer
    globals: np.ndarray  # float32 [len(GLOBAL_FEATURES)], log1p


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    dims = [max(d, 1) for d in shape]
    dims = [1] * (4 - len(dims)) + dims if len(dims) < 4 else dims[-3:] if len(dims) > 4 else dims
    return dims[-3], dims[-2], dims[-1]


@lru_cache(maxsize=1 << 14)
def _shape_features(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(h, w, c, elements) of a shape; elements 0 for a scalar. Memoised: shapes repeat."""
    return (*_hwc(shape), element_count(shape) if shape else 0)


_NO_SHAPE = _shape_features(())
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")
#: Fused activation -> its one-hot flags over ACTIVATIONS (others: all zero).
_ACTIVATION_FLAGS = {a: tuple(float(a == b) for b in ACTIVATIONS) for a in ACTIVATIONS}
_NO_ACTIVATION = (0.0,) * len(ACTIVATIONS)


def _node_row(sub: Subgraph, op: Operator, layer: LayerCost, sizes: TensorSizes,
              consumers: dict[int, list[int]]) -> tuple[float, ...]:
    """The NODE_FEATURES of one operator, before log scaling."""
    tensors, bits, constant, elements = sub.tensors, sizes.bits, sizes.constant, sizes.elements
    o = op.options
    acts: list[int] = []  # activation inputs, by tensor index
    weights = weight_elements = weight_bits = 0
    for t in op.inputs:
        if t < 0:
            continue
        if constant[t]:
            weights += 1
            weight_elements += elements[t]
            if bits[t] > weight_bits:
                weight_bits = bits[t]
        else:
            acts.append(t)
    outs = [t for t in op.outputs if t >= 0]
    kernel = (o.get("filter_height", 0), o.get("filter_width", 0))
    if op.opcode in _CONVS and len(acts) + weights > 1:
        shape = tensors[op.inputs[1]].shape
        kernel = (shape[1], shape[2]) if len(shape) == 4 else kernel
    readers = 0
    for t in op.outputs:
        readers += len(consumers.get(t, ()))
    return (
        kernel[0], kernel[1], o.get("stride_h", 1), o.get("stride_w", 1),
        o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1),
        o.get("depth_multiplier", 1) or 1, float(o.get("padding") == "SAME"),
        *_ACTIVATION_FLAGS.get(layer.activation, _NO_ACTIVATION),
        *(_shape_features(tuple(tensors[acts[0]].shape)) if acts else _NO_SHAPE),
        *(_shape_features(tuple(tensors[outs[0]].shape)) if outs else _NO_SHAPE),
        weight_elements, len(acts), len(outs),
        bits[acts[0]] / 32 if acts else 0, weight_bits / 32, bits[outs[0]] / 32 if outs else 0,
        layer.macs, layer.params, layer.param_bytes, layer.input_bytes, layer.output_bytes,
        readers,
    )


def featurize(model: Model, cost: ModelCost | None = None) -> GraphFeatures:
    """Features of the main subgraph of ``model`` (cost reused when already computed)."""
    cost = cost or analyze(model)
    sub = model.main
    sizes = sub.sizes
    n = len(sub.operators)
    consumers = sub.consumers
    rows = np.array([_node_row(sub, op, layer, sizes, consumers)
                     for op, layer in zip(sub.operators, cost.layers, strict=True)],
                    dtype=np.float64).reshape(n, len(NODE_FEATURES))
    types = np.array([_TYPE_INDEX.get(op.opcode, UNKNOWN_TYPE) for op in sub.operators],
                     dtype=np.int64)
    rows[:, _LOG_MASK] = np.log1p(rows[:, _LOG_MASK])
    edges = np.array([e[:2] for e in sub.edge_tuples], dtype=np.int64).reshape(-1, 2).T
    totals = (cost.macs, cost.params, cost.param_bytes, cost.peak_activation_bytes,
              cost.activation_bytes, cost.model_bytes, n,
              sum(sizes.nbytes[t] for t in sub.inputs), sum(sizes.nbytes[t] for t in sub.outputs))
    return GraphFeatures(types, rows.astype(np.float32), np.ascontiguousarray(edges),
                         np.log1p(np.array(totals, dtype=np.float64)).astype(np.float32))
