"""Block features: what the per-block cost network sees, from node features (NumPy).

A block is described by its head operator's features (the weighted operator, usually),
the maximum of each feature over the block (e.g. which activations it applies), the summed
costs of its operators (MACs, bytes moved), and its place in the graph: whether it reads a
model input or writes an output, where in the network it runs, and how much skip-connection
memory is live across it (residual units, see ``split``). Operator types enter the network
as learned embeddings, so they are returned as indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfsage.predictors.block.split import Split, split
from perfsage.predictors.features import NODE_FEATURES, GraphFeatures

#: Node features summed over a block (in linear units, then log1p again).
SUMMED = ("macs", "params", "param_bytes", "input_bytes", "output_bytes", "out_elements")
_SUMMED = [NODE_FEATURES.index(f) for f in SUMMED]
_ACT_INPUTS = NODE_FEATURES.index("activation_inputs")
_CONSUMERS = NODE_FEATURES.index("consumers")  # log1p
BLOCK_FEATURES = (
    *(f"head_{f}" for f in NODE_FEATURES), *(f"max_{f}" for f in NODE_FEATURES),
    *(f"sum_{f}" for f in SUMMED), "ops", "reads_model_input", "writes_model_output",
    "position", "in_unit", "unit_ops", "live_skip_bytes",
)


@dataclass
class GraphBlocks:
    """The blocks of one graph, ready for the cost network."""

    split: Split
    x: np.ndarray  # float32 [blocks, len(BLOCK_FEATURES)], not yet standardised
    head_type: np.ndarray  # int64 [blocks]
    member_type: np.ndarray  # int64 [ops]: type of each operator that is not a head
    member_block: np.ndarray  # int64 [ops]: its block


def graph_blocks(g: GraphFeatures) -> GraphBlocks:
    """Split ``g`` and featurise its blocks."""
    s = split(g)
    nb = len(s.blocks)
    heads = np.array([b[0] for b in s.blocks], dtype=np.int64)
    tails = np.array([b[-1] for b in s.blocks], dtype=np.int64)
    block_of = s.block_of
    nodes = g.nodes.astype(np.float64)
    width = nodes.shape[1]
    maxed = np.full((nb, width), -np.inf)
    np.maximum.at(maxed, block_of, nodes)
    sums = np.zeros((nb, len(_SUMMED)))
    np.add.at(sums, block_of, np.expm1(nodes[:, _SUMMED]))
    ops = np.bincount(block_of, minlength=nb)
    # An operator reading more activations than operators feed it reads a model input.
    fed = np.bincount(g.edges[1], minlength=len(block_of))
    reads_input = np.zeros(nb)
    np.maximum.at(reads_input, block_of, (nodes[:, _ACT_INPUTS] > fed).astype(np.float64))
    in_unit = np.zeros(nb)
    np.maximum.at(in_unit, block_of, s.in_unit.astype(np.float64))
    unit_ops = np.zeros(nb)
    np.maximum.at(unit_ops, block_of, s.unit_size.astype(np.float64))
    live = np.zeros(nb)
    np.maximum.at(live, block_of, s.live_bytes)
    x = np.concatenate([
        nodes[heads], maxed, np.log1p(sums),
        np.stack([np.log1p(ops), reads_input, (nodes[tails, _CONSUMERS] == 0).astype(float),
                  (np.arange(nb) + 0.5) / max(nb, 1), in_unit, np.log1p(unit_ops),
                  np.log1p(live)], axis=1),
    ], axis=1)
    member = np.ones(len(block_of), dtype=bool)
    member[heads] = False
    return GraphBlocks(s, x.astype(np.float32), g.op_types[heads].astype(np.int64),
                       g.op_types[member].astype(np.int64), block_of[member])
