"""The trained network evaluated with NumPy: what `perfsage predict` runs (no torch import).

Mirrors ``net.PerfSAGENet`` operation for operation; a test checks both give the same
numbers on the same graphs. Everything stays float32 (a float64 scale factor would silently
upcast every later product); neighbour means are gathers planned once per batch, not
``np.add.at``; and the two directions' ``lin_r`` share one product (their weights summed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfsage.errors import PredictionError
from perfsage.predictors.features import (
    ALIGNMENTS,
    LOG_KIB,
    NODE_FEATURES,
    GraphFeatures,
    channel_alignment,
    cost_basis,
    live_bytes,
)

SUM_SCALE = 1 / 16  # must equal net.SUM_SCALE
NODE_SHARE_LOG = np.float32(4.1588830833596715)  # must equal net.NODE_SHARE_LOG
RATE_BOUND = np.float32(4.0)  # must equal net.RATE_BOUND


def node_input_width(live: bool, align: bool) -> int:
    """Columns of the node matrix :func:`forward` feeds the network.

    The featurised columns, then the live-bytes one with the peak readout (``live``), then
    the channel-alignment ones (two per alignment, input and output channels) with ``align``.
    """
    return len(NODE_FEATURES) + int(live) + 2 * len(ALIGNMENTS) * int(align)


def check_finite(figures: dict[str, np.ndarray], names: list[str]) -> None:
    """Raise PredictionError at the first non-finite figure, naming its model and metric.

    ``figures``: metric -> one value per model, as ``PerfSAGEModel.predict`` returns them;
    ``names``: the models, in the same order. Call it on every figure before it leaves the
    program: an overflow far outside the training data must end in one clear line, never
    print as ``inf`` or ``NaN``.
    """
    for metric, values in figures.items():
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise PredictionError(names[i], metric, float(values[i]))


def _linear(w: dict[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    y = x @ w[f"{name}.weight"].T
    bias = w.get(f"{name}.bias")
    return y + bias if bias is not None else y


@dataclass(frozen=True, slots=True)
class _Neighbours:
    """Mean over each node's neighbours in one edge direction, built once per batch.

    Most operators have exactly one neighbour, so the mean starts as one gather of every
    node's first neighbour (a zero row, index ``n``, for none) and then adds the few second,
    third, ... neighbours, in edge order as ``np.add.at`` would, before scaling those nodes.
    """

    first: np.ndarray  # [n]: row of each node's first neighbour, n when it has none
    more: tuple[tuple[np.ndarray, np.ndarray], ...]  # (targets, sources) of k-th neighbours
    several: np.ndarray  # nodes with more than one neighbour
    inv_degree: np.ndarray  # float32 [len(several), 1]

    @classmethod
    def of(cls, source: np.ndarray, target: np.ndarray, n: int) -> _Neighbours:
        order = np.argsort(target, kind="stable")
        source, target = source[order], target[order]
        degree = np.bincount(target, minlength=n)
        rank = np.arange(len(target)) - (np.cumsum(degree) - degree)[target]
        first = np.full(n, n)
        first[target[rank == 0]] = source[rank == 0]
        more = tuple((target[rank == k], source[rank == k])
                     for k in range(1, degree.max(initial=0)))
        several = np.flatnonzero(degree > 1)
        return cls(first, more, several, (1 / degree[several]).astype(np.float32)[:, None])

    def mean(self, padded: np.ndarray) -> np.ndarray:
        """Neighbour means of ``padded`` (node features plus a zero row), one row per node."""
        out = padded[self.first]
        for targets, sources in self.more:
            out[targets] += padded[sources]
        out[self.several] *= self.inv_degree
        return out


def _round_weights(w: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, ...]:
    """Round i's SAGE pair: fwd lin_l, bwd lin_l, the two lin_r summed, and one bias."""
    def t(name: str) -> np.ndarray:
        return np.ascontiguousarray(w[name].T, dtype=np.float32)

    biases = [w[k] for d in ("fwd", "bwd") for lin in ("lin_l", "lin_r")
              if (k := f"{d}.{i}.{lin}.bias") in w]
    return (t(f"fwd.{i}.lin_l.weight"), t(f"bwd.{i}.lin_l.weight"),
            np.ascontiguousarray((w[f"fwd.{i}.lin_r.weight"] + w[f"bwd.{i}.lin_r.weight"]).T),
            np.sum(biases, axis=0, dtype=np.float32))


def _embed(w: dict[str, np.ndarray], types: np.ndarray, x: np.ndarray) -> np.ndarray:
    """lin_in over [type embedding | features], the embedding half looked up pre-multiplied."""
    weight, embed = w["lin_in.weight"], w["embed.weight"]
    split = embed.shape[1]
    table = embed @ weight[:, :split].T + w["lin_in.bias"]
    return np.maximum(table[types] + x @ weight[:, split:].T, 0)


def _concatenated(graphs: list[GraphFeatures]) -> tuple[np.ndarray, ...]:
    """Batch arrays: node types, node features, edges (renumbered) and graph start rows."""
    sizes = np.array([len(g.op_types) for g in graphs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    offsets = np.repeat(starts, [g.edges.shape[1] for g in graphs])
    edges = np.concatenate([g.edges for g in graphs], axis=1) + offsets
    return (np.concatenate([g.op_types for g in graphs]), np.concatenate([g.nodes for g in graphs]),
            edges, starts, sizes)


def _pool(h: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-graph sum and max of node rows (a loop over graphs beats 2-D ``reduceat``)."""
    blocks = [h[s:s + k] for s, k in zip(starts.tolist(), sizes.tolist(), strict=True)]
    return np.stack([b.sum(axis=0) for b in blocks]), np.stack([b.max(axis=0) for b in blocks])


def _logsumexp(terms: np.ndarray, axis: int) -> np.ndarray:
    top = terms.max(axis=axis)
    return top + np.log(np.exp(terms - np.expand_dims(top, axis)).sum(axis=axis))


def _log_costs(w: dict[str, np.ndarray], h: np.ndarray, z: np.ndarray, index: np.ndarray,
               mu: np.ndarray, sigma: np.ndarray, nodes: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Log per-operator costs [nodes, metrics] and log overheads [graphs, metrics].

    ``nodes``: the operators' features as featurize gives them (not standardised).
    """
    cost = _linear(w, "node_head.2", np.maximum(_linear(w, "node_head.0", h), 0))
    rates = w.get("rate_log")
    if rates is None:
        return cost + (mu - NODE_SHARE_LOG), z[:, index] * sigma + mu
    k = len(rates) - 1
    bound = RATE_BOUND * np.tanh(cost / RATE_BOUND)
    terms = bound.reshape(len(h), k, len(index)) + rates[:k] + cost_basis(nodes)[:, :, None]
    return (_logsumexp(terms, axis=1),
            rates[k] + RATE_BOUND * np.tanh(z[:, index] / RATE_BOUND))


def _additive(w: dict[str, np.ndarray], h: np.ndarray, z: np.ndarray, starts: np.ndarray,
              index: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
              nodes: np.ndarray) -> np.ndarray:
    """The additive readout: per-operator costs summed per graph, plus the pooled overhead."""
    cost, overhead = _log_costs(w, h, z, index, mu, sigma, nodes)
    peak = np.maximum(np.maximum.reduceat(cost, starts, axis=0), overhead)
    graph_of = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(h))))
    total = np.add.reduceat(np.exp(cost - peak[graph_of]), starts, axis=0)
    out = z.copy()
    out[:, index] = (peak + np.log(total + np.exp(overhead - peak)) - mu) / sigma
    return out


def _peak(w: dict[str, np.ndarray], h: np.ndarray, z: np.ndarray, starts: np.ndarray,
          live_kib: np.ndarray, index: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
          ) -> np.ndarray:
    """The peak readout: the largest per-operator peak per graph, or the pooled floor."""
    node_peak = _linear(w, "peak_head.2", np.maximum(_linear(w, "peak_head.0", h), 0))
    node_peak += live_kib[:, None]
    top = np.maximum(np.maximum.reduceat(node_peak, starts, axis=0), z[:, index] * sigma + mu)
    out = z.copy()
    out[:, index] = (top - mu) / sigma
    return out


def _encode(weights: dict[str, np.ndarray], layers: int, graphs: list[GraphFeatures],
            node_mu: np.ndarray, node_sigma: np.ndarray, global_mu: np.ndarray,
            global_sigma: np.ndarray, with_live: bool, type_map: np.ndarray | None,
            with_align: bool = False) -> tuple[np.ndarray, ...]:
    """Node states, pooled-head outputs, graph start rows, raw node features, live bytes."""
    types, raw, edges, starts, sizes = _concatenated(graphs)
    nodes, live = raw, None
    if type_map is not None:
        types = type_map[types]
    n = len(types)
    fwd, bwd = _Neighbours.of(edges[0], edges[1], n), _Neighbours.of(edges[1], edges[0], n)
    w = weights
    glob = np.stack([g.globals for g in graphs])
    if with_live:
        live = live_bytes(nodes, edges, starts, sizes, glob)
        nodes = np.column_stack([nodes, live])
    if with_align:
        nodes = np.column_stack([nodes, channel_alignment(raw)])
    h0 = _embed(w, types, (nodes - node_mu) / node_sigma)
    padded = np.zeros((n + 1, h0.shape[1]), dtype=np.float32)  # h, then one zero row
    h = padded[:n]
    h[:] = h0
    for i in range(layers):
        lin_fwd, lin_bwd, lin_self, bias = _round_weights(w, i)
        z = fwd.mean(padded) @ lin_fwd
        z += bwd.mean(padded) @ lin_bwd
        z += h @ lin_self
        z += bias
        h += np.maximum(z, 0, out=z)
    total, largest = _pool(h, starts, sizes)
    pooled = np.concatenate([
        total * np.float32(SUM_SCALE), total / sizes[:, None].astype(np.float32), largest,
        (glob - global_mu) / global_sigma,
    ], axis=1)
    z = np.maximum(_linear(w, "head.0", pooled), 0)
    z = np.maximum(_linear(w, "head.2", z), 0)
    return h, _linear(w, "head.4", z), starts, raw, live


def forward(weights: dict[str, np.ndarray], layers: int, graphs: list[GraphFeatures],
            node_mu: np.ndarray, node_sigma: np.ndarray, global_mu: np.ndarray,
            global_sigma: np.ndarray, additive: tuple[np.ndarray, ...] | None = None,
            peak: tuple[np.ndarray, ...] | None = None, type_map: np.ndarray | None = None,
            align: bool = False) -> np.ndarray:
    """Standardised outputs for a batch of graphs, one row per graph.

    ``additive`` and ``peak``: (metric indices, their mu, their sigma) for those readouts;
    ``peak`` also adds the live-bytes node feature, ``align`` the channel-alignment ones.
    ``type_map`` renames operator types (those never trained on become unknown).
    """
    h, z, starts, raw, live = _encode(weights, layers, graphs, node_mu, node_sigma, global_mu,
                                      global_sigma, peak is not None, type_map, align)
    if peak:
        z = _peak(weights, h, z, starts, live - LOG_KIB, *peak)
    return _additive(weights, h, z, starts, *additive, raw) if additive else z


def operator_costs(weights: dict[str, np.ndarray], layers: int, graph: GraphFeatures,
                   node_mu: np.ndarray, node_sigma: np.ndarray, global_mu: np.ndarray,
                   global_sigma: np.ndarray, additive: tuple[np.ndarray, ...],
                   peak: tuple[np.ndarray, ...] | None = None,
                   type_map: np.ndarray | None = None, align: bool = False,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One graph's additive metrics split up: per operator [ops, metrics] and overhead.

    They add up to what :func:`forward` predicts (in the metrics' units, not standardised).
    """
    h, z, _, raw, _ = _encode(weights, layers, [graph], node_mu, node_sigma, global_mu,
                              global_sigma, peak is not None, type_map, align)
    cost, overhead = _log_costs(weights, h, z, *additive, raw)
    return np.exp(cost.astype(np.float64)), np.exp(overhead[0].astype(np.float64))
