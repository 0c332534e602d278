"""Cutting an operator graph into blocks, from ``GraphFeatures`` alone (works at predict time).

A block is what an NPU compiler schedules as one unit: a head operator plus the chain of
cheap operators it can fuse. The rules:

* Every operator starts a new block unless it is *absorbable* (an activation, an
  element-wise operator with at most one non-constant input, or a reshape-like operator)
  **and** it reads exactly one operator **and** that operator feeds nothing else. Then it
  joins its producer's block. So CONV_2D -> HARD_SWISH is one block; a residual ADD (two
  producers) or a squeeze-and-excitation MUL heads a block of its own.
* Pooling, concatenation, residual ADD, MEAN and the like therefore head their own blocks
  (they may absorb a following activation, as Vela fuses ADD + RELU). They are not merged
  into the preceding weighted block: their cost is memory-bound and differs from the
  convolution's, and ``predict --per-layer`` should show them as their own rows.

Blocks are chains in execution order and cover every operator exactly once.

Residual units are the second level: an operator is *inside a unit* when some tensor
skips over it (an edge from an earlier to a later operator passes it); the merge operator
ending the skip belongs to the unit too. The bytes held live across an operator by such
skips are what residual units add to peak memory, so they become a block feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfsage.predictors.features import NODE_FEATURES, OP_TYPES, GraphFeatures

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
            "BATCH_MATMUL", "CONV_3D")
#: Operators that follow a head into its block (given one producer, which feeds only them).
ABSORBABLE = (
    # activations
    "RELU", "RELU6", "LEAKY_RELU", "PRELU", "ELU", "LOGISTIC", "TANH", "HARD_SWISH", "GELU",
    "SOFTMAX", "LOG_SOFTMAX",
    # element-wise maths (absorbed only with a constant second operand)
    "EXP", "RSQRT", "SQRT", "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM",
    "MINIMUM",
    # reshape-like: no arithmetic, often free on the NPU
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "CAST",
)
_ABSORB = np.zeros(len(OP_TYPES) + 1, dtype=bool)
_ABSORB[[OP_TYPES.index(t) for t in ABSORBABLE]] = True
_ACT_INPUTS = NODE_FEATURES.index("activation_inputs")
_OUT_BYTES = NODE_FEATURES.index("output_bytes")  # log1p


@dataclass(frozen=True)
class Split:
    """Blocks of one graph plus the residual-unit facts about each operator."""

    blocks: list[list[int]]  # operator indices, execution order, every operator once
    block_of: np.ndarray  # int64 [ops]: the block of each operator
    in_unit: np.ndarray  # bool [ops]: skipped over by a tensor, or merging one
    unit_size: np.ndarray  # int64 [ops]: operators in the unit (0 outside one)
    live_bytes: np.ndarray  # float64 [ops]: bytes of skip tensors live across the operator


def _links(g: GraphFeatures) -> tuple[list[list[int]], list[list[int]]]:
    """Producers and consumers of each operator (unique, ascending)."""
    n = len(g.op_types)
    pairs = np.unique(g.edges.T, axis=0) if g.edges.size else np.zeros((0, 2), np.int64)
    producers: list[list[int]] = [[] for _ in range(n)]
    consumers: list[list[int]] = [[] for _ in range(n)]
    for p, c in pairs.tolist():
        producers[c].append(p)
        consumers[p].append(c)
    return producers, consumers


def blocks_of(g: GraphFeatures) -> list[list[int]]:
    """The blocks of ``g`` (see the module docstring), as operator index lists."""
    return split(g).blocks


def split(g: GraphFeatures) -> Split:
    """Blocks and residual units of ``g``."""
    n = len(g.op_types)
    producers, consumers = _links(g)
    absorb = _ABSORB[g.op_types] & (g.nodes[:, _ACT_INPUTS] <= 1)
    block_of = np.empty(n, dtype=np.int64)
    blocks: list[list[int]] = []
    for i in range(n):
        p = producers[i]
        if absorb[i] and len(p) == 1 and len(consumers[p[0]]) == 1 and p[0] < i:
            block_of[i] = block_of[p[0]]
            blocks[block_of[i]].append(i)
        else:
            block_of[i] = len(blocks)
            blocks.append([i])
    in_unit, unit_size, live = _units(g, producers, consumers)
    return Split(blocks, block_of, in_unit, unit_size, live)


def _units(g: GraphFeatures, producers: list[list[int]],
           consumers: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which operators lie in residual units, the units' sizes, skip bytes live across each."""
    n = len(g.op_types)
    skipped = np.zeros(n + 1, dtype=np.int64)
    live = np.zeros(n + 1, dtype=np.float64)
    out_bytes = np.expm1(g.nodes[:, _OUT_BYTES].astype(np.float64))
    for p in range(n):
        last = max(consumers[p], default=p)
        if last > p + 1:  # the tensor of p skips over p+1 .. last-1
            skipped[p + 1] += 1
            skipped[last] -= 1
            live[p + 1] += out_bytes[p]
            live[last] -= out_bytes[p]
    skipped, live = np.cumsum(skipped)[:n] > 0, np.cumsum(live)[:n]
    in_unit = skipped.copy()
    unit_size = np.zeros(n, dtype=np.int64)
    i = 0
    while i < n:
        if not skipped[i]:
            i += 1
            continue
        end = i
        while end + 1 < n and skipped[end + 1]:
            end += 1
        if end + 1 < n and len(producers[end + 1]) > 1:
            end += 1  # the merge operator closes the unit
        in_unit[i:end + 1] = True
        unit_size[i:end + 1] = end + 1 - i
        i = end + 1
    # A skip tensor read by the operator itself is an input, not extra live memory.
    for c in range(n):
        for p in producers[c]:
            if max(consumers[p]) > c:
                live[c] -= out_bytes[p]
    return in_unit, unit_size, np.maximum(live, 0.0)
