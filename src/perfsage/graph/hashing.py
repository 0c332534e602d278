"""A structural hash of a graph: equal for models that differ only in weights or names.

Dataset generation uses it to skip duplicate architectures: two configurations that build
the same operators with the same options, shapes, dtypes and wiring hash the same.
"""

from __future__ import annotations

import hashlib
import json

from perfsage.graph.ir import Model, Subgraph


def _subgraph_signature(sub: Subgraph) -> list:
    # Tensors are named by order of first appearance so names and indices do not matter.
    ids: dict[int, int] = {}

    def tid(t: int) -> int:
        return -1 if t < 0 else ids.setdefault(t, len(ids))

    def desc(t: int) -> list:
        if t < 0:
            return [-1]
        tensor = sub.tensors[t]
        return [tid(t), list(tensor.shape), tensor.dtype, tensor.is_constant]

    ops = [
        [op.opcode, op.custom_code, op.options, [desc(t) for t in op.inputs],
         [desc(t) for t in op.outputs]]
        for op in sub.operators
    ]
    return [[desc(t) for t in sub.inputs], ops, [tid(t) for t in sub.outputs]]


def graph_hash(model: Model) -> str:
    """Hex SHA-256 of the model's structure (every subgraph), independent of weights."""
    text = json.dumps([_subgraph_signature(s) for s in model.subgraphs], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
