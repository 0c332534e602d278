"""What a predictor was trained on, and when a graph lies outside it.

A GNN still answers for a graph unlike its training data (float32 where it saw only int8,
an operator type it never met, a network ten times larger), but the answer is then an
extrapolation. The training domain is recorded beside the weights and `perfsage predict`
names the reasons a graph falls outside it, instead of staying silent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.predictors.features import GLOBAL_FEATURES, NODE_FEATURES, OP_TYPES, GraphFeatures

# Activation bit widths (weights mix int8 with int32 biases, so they tell less).
_BITS = [NODE_FEATURES.index(k) for k in ("in_bits", "out_bits")]


def training_domain(graphs: list[GraphFeatures]) -> dict[str, Any]:
    """Operator types, activation bit widths and global-feature ranges seen in ``graphs``."""
    types = np.unique(np.concatenate([g.op_types for g in graphs]))
    bits = np.unique(np.concatenate([g.nodes[:, _BITS].ravel() for g in graphs]))
    glob = np.stack([g.globals for g in graphs])
    return {"op_types": [(list(OP_TYPES) + ["unknown"])[t] for t in types.tolist()],
            "bits": sorted({round(b * 32) for b in bits.tolist()}),
            "global_min": glob.min(axis=0).tolist(), "global_max": glob.max(axis=0).tolist()}


def outside(graph: GraphFeatures, domain: dict[str, Any] | None, op_names: list[str]) -> list[str]:
    """Reasons ``graph`` lies outside the training domain (empty when it does not)."""
    if not domain:
        return []
    reasons = []
    names = list(OP_TYPES) + ["unknown"]
    new_types = sorted({names[t] for t in graph.op_types.tolist()} - set(domain["op_types"]))
    if new_types:
        unknown = sorted(set(op_names) - set(OP_TYPES)) if "unknown" in new_types else []
        reasons.append("operator types never trained on: " + ", ".join(
            [t for t in new_types if t != "unknown"] + unknown))
    bits = {round(b * 32) for b in graph.nodes[:, _BITS].ravel().tolist()} - {0}
    if bits - set(domain["bits"]):
        reasons.append("activation bit widths never trained on: "
                       + ", ".join(f"{b}-bit" for b in sorted(bits - set(domain["bits"]))))
    lo, hi = np.asarray(domain["global_min"]), np.asarray(domain["global_max"])
    out_of_range = (graph.globals < lo) | (graph.globals > hi)
    beyond = [GLOBAL_FEATURES[i] for i in np.flatnonzero(out_of_range)]
    if beyond:
        reasons.append("beyond the training range in " + ", ".join(beyond))
    return reasons
