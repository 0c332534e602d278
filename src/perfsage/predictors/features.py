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

from perfsage.graph import Model, Subgraph
from perfsage.graph.analysis import ModelCost, macs_given_outputs, model_totals
from perfsage.graph.ir import element_count

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
_CONSUMERS = NODE_FEATURES.index("consumers")


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


def _node_rows(sub: Subgraph) -> tuple[list[tuple], list[int], list[int], list[list[int]]]:
    """Each operator's NODE_FEATURES before log scaling, its own MACs, and the edges.

    One pass over the operators counts what ``analysis.analyze`` would per layer (MACs,
    parameters, bytes) together with the features and the edges of ``sub.edge_tuples``,
    so each operator's tensors are walked once and no LayerCost is built. Rows are plain
    tuples, converted to float64 in one go by the caller as they always were (trained
    weights depend on the exact numbers); the last feature, "consumers", is left 0 here
    and returned as its own list, since an operator's readers are known only at the end.
    """
    tensors, sizes, producers = sub.tensors, sub.sizes, sub.producers
    elements, bits, nbytes, constant = sizes.elements, sizes.bits, sizes.nbytes, sizes.constant
    # How many operators read each tensor, one reading it twice counted once: as
    # len(sub.consumers[t]), without building the lists.
    reads = [0] * len(tensors)
    last_reader = [-1] * len(tensors)
    rows: list[tuple] = []
    macs: list[int] = []
    outputs: list[list[int]] = []
    edges: list[list[int]] = [[], []]  # producer, consumer
    for i, op in enumerate(sub.operators):
        acts: list[int] = []  # activation inputs, by tensor index
        weights = weight_elements = weight_bits = input_bytes = params = param_bytes = 0
        for t in op.inputs:
            if t < 0:
                continue
            first = last_reader[t] != i  # an operator may read a tensor twice
            if first:
                last_reader[t] = i
                reads[t] += 1
                if t in producers:  # in input order, each tensor once: as edge_tuples
                    edges[0].append(producers[t])
                    edges[1].append(op.index)
            if constant[t]:
                weights += 1
                weight_elements += elements[t]
                if bits[t] > weight_bits:
                    weight_bits = bits[t]
                if first:  # params count each constant once, as analysis._layer does
                    params += elements[t]
                    param_bytes += nbytes[t]
            else:
                acts.append(t)
                input_bytes += nbytes[t]
        outs: list[int] = []
        out_elements = output_bytes = 0
        for t in op.outputs:
            if t >= 0:
                outs.append(t)
                out_elements += elements[t]
                output_bytes += nbytes[t]
        own_macs = macs_given_outputs(sub, op, out_elements)
        o = op.options
        kernel = (o.get("filter_height", 0), o.get("filter_width", 0))
        if op.opcode in _CONVS and len(acts) + weights > 1:
            shape = tensors[op.inputs[1]].shape
            # A dimension stored as -1 (dynamic) counts as 1, as element counts do.
            kernel = (max(shape[1], 1), max(shape[2], 1)) if len(shape) == 4 else kernel
        # A fused activation of None or "NONE" has no flags, as LayerCost.activation None.
        rows.append((
            kernel[0], kernel[1], o.get("stride_h", 1), o.get("stride_w", 1),
            o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1),
            o.get("depth_multiplier", 1) or 1, float(o.get("padding") == "SAME"),
            *_ACTIVATION_FLAGS.get(o.get("fused_activation_function"), _NO_ACTIVATION),
            *(_shape_features(tuple(tensors[acts[0]].shape)) if acts else _NO_SHAPE),
            *(_shape_features(tuple(tensors[outs[0]].shape)) if outs else _NO_SHAPE),
            weight_elements, len(acts), len(outs),
            bits[acts[0]] / 32 if acts else 0, weight_bits / 32, bits[outs[0]] / 32 if outs else 0,
            own_macs, params, param_bytes, input_bytes, output_bytes, 0,
        ))
        macs.append(own_macs)
        outputs.append(outs)
    readers = [sum([reads[t] for t in outs]) for outs in outputs]
    return rows, macs, readers, edges


def featurize(model: Model, cost: ModelCost | None = None) -> GraphFeatures:
    """Features of the main subgraph of ``model`` (cost's totals reused when already computed).

    Per-operator features are counted from the model either way; ``analyze(model)``'s
    layers hold the same numbers, so a cost spares only the totals.
    """
    sub = model.main
    sizes = sub.sizes
    n = len(sub.operators)
    rows, macs, readers, edges = _node_rows(sub)
    nodes = np.array(rows, dtype=np.float64).reshape(n, len(NODE_FEATURES))
    nodes[:, _CONSUMERS] = readers
    nodes[:, _LOG_MASK] = np.log1p(nodes[:, _LOG_MASK])
    types = np.array([_TYPE_INDEX.get(op.opcode, UNKNOWN_TYPE) for op in sub.operators],
                     dtype=np.int64)
    whole = cost if cost is not None else model_totals(model, macs)
    totals = (whole.macs, whole.params, whole.param_bytes, whole.peak_activation_bytes,
              whole.activation_bytes, whole.model_bytes, n,
              sum(sizes.nbytes[t] for t in sub.inputs), sum(sizes.nbytes[t] for t in sub.outputs))
    return GraphFeatures(types, nodes.astype(np.float32), np.array(edges, dtype=np.int64),
                         np.log1p(np.array(totals, dtype=np.float64)).astype(np.float32))


_OUTPUT_BYTES = NODE_FEATURES.index("output_bytes")
_ACTIVATION_INPUTS = NODE_FEATURES.index("activation_inputs")
_GRAPH_INPUT_BYTES = GLOBAL_FEATURES.index("input_bytes")


def live_bytes(nodes: np.ndarray, edges: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
               globals_: np.ndarray) -> np.ndarray:
    """log1p of the activation bytes live while each operator runs, for a batch of graphs.

    Peak memory (SRAM, arena) is the most any planner holds at one step of the schedule, so
    what is live at each operator is the quantity a peak readout needs. It is rebuilt here
    from the features alone, as ``analysis.peak_activation_bytes`` counts it from the IR: an
    operator's outputs live from it to their last reader (to the end when nothing reads
    them), the graph inputs from the start to their last reader. ``nodes`` and ``edges`` are
    the graphs' arrays concatenated (edges renumbered), ``starts``/``sizes`` each graph's
    rows, ``globals_`` its global features [graphs, len(GLOBAL_FEATURES)].
    """
    n = len(nodes)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    graph_of = np.repeat(np.arange(len(starts)), sizes)
    out_bytes = np.expm1(nodes[:, _OUTPUT_BYTES].astype(np.float64))
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, edges[0], edges[1])
    last = np.where(last < 0, (starts + sizes - 1)[graph_of], last)
    # Operators with more activation inputs than producers read a graph input.
    reads_input = nodes[:, _ACTIVATION_INPUTS] > np.bincount(edges[1], minlength=n)
    last_input = np.full(len(starts), -1, dtype=np.int64)
    np.maximum.at(last_input, graph_of[reads_input], np.flatnonzero(reads_input))
    has = last_input >= 0
    in_bytes = np.expm1(globals_[has, _GRAPH_INPUT_BYTES].astype(np.float64))
    change = np.zeros(n + 1)
    change[:n] = out_bytes
    change -= np.bincount(last + 1, weights=out_bytes, minlength=n + 1)
    change += np.bincount(starts[has], weights=in_bytes, minlength=n + 1)
    change -= np.bincount(last_input[has] + 1, weights=in_bytes, minlength=n + 1)
    return np.log1p(np.maximum(np.cumsum(change)[:n], 0)).astype(np.float32)


#: log1p(bytes) - LOG_KIB = log((bytes + 1) / 1 KiB): live bytes in the peak readout's units.
LOG_KIB = np.float32(np.log(1024))
#: The name of :func:`live_bytes`'s column where a network takes it as a node input.
LIVE_BYTES_COLUMN = "live_bytes"


_CHANNELS = [NODE_FEATURES.index("in_c"), NODE_FEATURES.index("out_c")]
#: Channel blocks NPUs compute in (Ethos-U: 8 output channels per block, input channels by 16
#: or 32; other accelerators alike).
ALIGNMENTS = (8, 16, 32)
#: The names of :func:`channel_alignment`'s columns, in its order.
ALIGNMENT_COLUMNS = tuple(f"{c}_pad{k}" for k in ALIGNMENTS for c in ("in_c", "out_c"))


def channel_alignment(nodes: np.ndarray) -> np.ndarray:
    """log(ceil(c / k) * k / c) of each operator's input and output channels, per k.

    An NPU computes channels in blocks, so a layer's cost is a sawtooth of its channel
    count: with Vela 5.2 on Ethos-U55-128, a 3x3 convolution with 24 input and output
    channels takes as many cycles as one with 32, and 33 channels cost 2.35x per MAC what 32
    do. A log-scaled count hides that from an MLP; these columns state the padding
    (float32 [nodes, 2 * len(ALIGNMENTS)]; 0 where an operator has no channels).
    """
    c = np.rint(np.expm1(nodes[:, _CHANNELS].astype(np.float64)))
    safe = np.maximum(c, 1.0)
    cols = [np.where(c > 0, np.log(np.ceil(safe / k) * k / safe), 0.0)
            for k in ALIGNMENTS]
    return np.concatenate(cols, axis=1).astype(np.float32)


def graph_live_bytes(g: GraphFeatures) -> np.ndarray:
    """:func:`live_bytes` of one graph."""
    return live_bytes(g.nodes, g.edges, np.zeros(1, dtype=np.int64),
                      np.array([len(g.op_types)]), g.globals[None])


_BASIS = [NODE_FEATURES.index(k) for k in ("macs", "input_bytes", "output_bytes", "param_bytes")]
#: What an operator's cost is made of: multiply-accumulates, activation bytes read and
#: written, weight bytes, a fixed part.
COST_BASIS = ("macs", "activation_bytes", "param_bytes", "operator")


def cost_basis(nodes: np.ndarray) -> np.ndarray:
    """Log of each COST_BASIS quantity per operator (float32 [nodes, 4]; +1 against log 0)."""
    raw = np.expm1(nodes[:, _BASIS].astype(np.float64))
    return np.column_stack([np.log1p(raw[:, 0]), np.log1p(raw[:, 1] + raw[:, 2]),
                            np.log1p(raw[:, 3]), np.zeros(len(nodes))]).astype(np.float32)
