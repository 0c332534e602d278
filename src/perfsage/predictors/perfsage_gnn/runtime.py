"""The trained network evaluated with NumPy: what `perfsage predict` runs (no torch import).

Mirrors ``net.PerfSAGENet`` operation for operation; a test checks both give the same
numbers on the same graphs.
"""

from __future__ import annotations

import numpy as np

from perfsage.predictors.features import GraphFeatures

SUM_SCALE = 1 / 16  # must equal net.SUM_SCALE


def _linear(w: dict[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    y = x @ w[f"{name}.weight"].T
    bias = w.get(f"{name}.bias")
    return y + bias if bias is not None else y


def _mean_neighbours(h: np.ndarray, src: np.ndarray, dst: np.ndarray,
                     inv_degree: np.ndarray) -> np.ndarray:
    out = np.zeros_like(h)
    np.add.at(out, dst, h[src])
    return out * inv_degree


def _sage(w: dict[str, np.ndarray], name: str, h: np.ndarray, src: np.ndarray,
          dst: np.ndarray, inv_degree: np.ndarray) -> np.ndarray:
    # PyG SAGEConv with mean aggregation: lin_l(mean of neighbours) + lin_r(self).
    return (_linear(w, f"{name}.lin_l", _mean_neighbours(h, src, dst, inv_degree))
            + _linear(w, f"{name}.lin_r", h))


def forward(weights: dict[str, np.ndarray], layers: int, graphs: list[GraphFeatures],
            node_mu: np.ndarray, node_sigma: np.ndarray, global_mu: np.ndarray,
            global_sigma: np.ndarray) -> np.ndarray:
    """Standardised outputs for a batch of graphs, one row per graph."""
    sizes = np.array([len(g.op_types) for g in graphs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    types = np.concatenate([g.op_types for g in graphs])
    x = (np.concatenate([g.nodes for g in graphs]) - node_mu) / node_sigma
    edges = np.concatenate([g.edges + s for g, s in zip(graphs, starts, strict=True)], axis=1)
    src, dst = edges[0], edges[1]
    n = len(types)
    inv_fwd = 1.0 / np.maximum(np.bincount(dst, minlength=n), 1)[:, None]
    inv_bwd = 1.0 / np.maximum(np.bincount(src, minlength=n), 1)[:, None]

    w = weights
    h = np.maximum(_linear(w, "lin_in", np.concatenate([w["embed.weight"][types], x], axis=1)),
                   0)
    for i in range(layers):
        h = h + np.maximum(_sage(w, f"fwd.{i}", h, src, dst, inv_fwd)
                           + _sage(w, f"bwd.{i}", h, dst, src, inv_bwd), 0)
    total = np.add.reduceat(h, starts, axis=0)
    pooled = np.concatenate([
        total * SUM_SCALE, total / sizes[:, None], np.maximum.reduceat(h, starts, axis=0),
        (np.stack([g.globals for g in graphs]) - global_mu) / global_sigma,
    ], axis=1)
    z = np.maximum(_linear(w, "head.0", pooled), 0)
    z = np.maximum(_linear(w, "head.2", z), 0)
    return _linear(w, "head.4", z)
