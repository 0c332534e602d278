"""The trained network evaluated with NumPy: what `perfsage predict` runs (no torch import).

Mirrors ``net.PerfSAGENet`` operation for operation, both built from one ``spec.ModelSpec``;
a test checks both give the same numbers on the same graphs. :class:`Network` prepares
what every call multiplies once, from the spec and the tensors. Everything stays float32 (a
float64 scale factor would silently upcast every later product); neighbour means are
gathers planned once per batch, not ``np.add.at``; and the two directions' ``lin_r`` share
one product (their weights summed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from perfsage.errors import PredictionError
from perfsage.predictors.features import LOG_KIB, OP_TYPES, UNKNOWN_TYPE, GraphFeatures
from perfsage.predictors.perfsage_gnn.spec import Batch, ModelSpec


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


class _Neighbours(NamedTuple):
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


def _readout(spec: ModelSpec, names: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
    """(metric indices, mu, sigma) of the metrics a structured readout predicts."""
    if not names:
        return None
    index = np.array([spec.metrics.index(m) for m in names], dtype=np.int64)
    return (index, np.asarray(spec.mu, dtype=np.float32)[index],
            np.asarray(spec.sigma, dtype=np.float32)[index])


def _type_map(spec: ModelSpec) -> np.ndarray | None:
    """Operator type renaming: types never trained on become unknown, as type dropout taught."""
    if not (spec.type_dropout and spec.domain):
        return None
    seen = set(spec.domain["op_types"])
    return np.array([i if name in seen else UNKNOWN_TYPE
                     for i, name in enumerate([*OP_TYPES, "unknown"])], dtype=np.int64)


class Network:
    """A spec and its tensors, with what every prediction multiplies prepared once.

    The tensors must have passed ``config.read_spec``'s checks against the spec. (A plain
    class, not a dataclass: prediction imports this module on every start.)
    """

    __slots__ = ("spec", "weights", "node_mu", "node_sigma", "global_mu", "global_sigma",
                 "additive", "peak", "type_map", "type_rows", "lin_in_columns", "rounds",
                 "sum_scale", "node_share_log", "rate_bound")

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
        def f32(values: tuple[float, ...]) -> np.ndarray:
            return np.asarray(values, dtype=np.float32)

        self.spec, self.weights = spec, weights
        self.node_mu, self.node_sigma = f32(spec.node_mu), f32(spec.node_sigma)
        self.global_mu, self.global_sigma = f32(spec.global_mu), f32(spec.global_sigma)
        #: (metric indices, mu, sigma) of each structured readout, None without it
        self.additive, self.peak = _readout(spec, spec.additive), _readout(spec, spec.peak)
        self.type_map = _type_map(spec)  # renames operator types before the embedding
        lin_in, embed = weights["lin_in.weight"], weights["embed.weight"]
        split = embed.shape[1]
        #: lin_in's output for each operator type's embedding, bias added
        self.type_rows = embed @ lin_in[:, :split].T + weights["lin_in.bias"]
        self.lin_in_columns = lin_in[:, split:].T  # lin_in's weights on the node columns
        self.rounds = tuple(_round_weights(weights, i) for i in range(spec.layers))
        constants = spec.net_constants
        self.sum_scale = np.float32(constants["sum_scale"])
        self.node_share_log = np.float32(constants["node_share_log"])
        self.rate_bound = np.float32(constants["rate_bound"])


def _pool(h: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-graph sum and max of node rows (a loop over graphs beats 2-D ``reduceat``)."""
    blocks = [h[s:s + k] for s, k in zip(starts.tolist(), sizes.tolist(), strict=True)]
    return np.stack([b.sum(axis=0) for b in blocks]), np.stack([b.max(axis=0) for b in blocks])


def _logsumexp(terms: np.ndarray, axis: int) -> np.ndarray:
    top = terms.max(axis=axis)
    return top + np.log(np.exp(terms - np.expand_dims(top, axis)).sum(axis=axis))


def _log_costs(net: Network, h: np.ndarray, z: np.ndarray, batch: Batch,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Log per-operator costs [nodes, metrics] and log overheads [graphs, metrics]."""
    w, bound = net.weights, net.rate_bound
    index, mu, sigma = net.additive
    cost = _linear(w, "node_head.2", np.maximum(_linear(w, "node_head.0", h), 0))
    if net.spec.rate_init is None:
        return cost + (mu - net.node_share_log), z[:, index] * sigma + mu
    rates = w["rate_log"]
    k = len(rates) - 1
    terms = (bound * np.tanh(cost / bound)).reshape(len(h), k, len(index)) + rates[:k]
    terms += net.spec.basis(batch)[:, :, None]
    return _logsumexp(terms, axis=1), rates[k] + bound * np.tanh(z[:, index] / bound)


def _additive(net: Network, h: np.ndarray, z: np.ndarray, batch: Batch) -> np.ndarray:
    """The additive readout: per-operator costs summed per graph, plus the pooled overhead."""
    index, mu, sigma = net.additive
    starts = batch.starts
    cost, overhead = _log_costs(net, h, z, batch)
    peak = np.maximum(np.maximum.reduceat(cost, starts, axis=0), overhead)
    graph_of = np.repeat(np.arange(len(starts)), batch.sizes)
    total = np.add.reduceat(np.exp(cost - peak[graph_of]), starts, axis=0)
    out = z.copy()
    out[:, index] = (peak + np.log(total + np.exp(overhead - peak)) - mu) / sigma
    return out


def _peak(net: Network, h: np.ndarray, z: np.ndarray, batch: Batch) -> np.ndarray:
    """The peak readout: the largest per-operator peak per graph, or the pooled floor.

    Each operator's peak is a correction to the KiB live while it runs.
    """
    index, mu, sigma = net.peak
    w = net.weights
    node_peak = _linear(w, "peak_head.2", np.maximum(_linear(w, "peak_head.0", h), 0))
    node_peak += (batch.live - LOG_KIB)[:, None]
    top = np.maximum(np.maximum.reduceat(node_peak, batch.starts, axis=0),
                     z[:, index] * sigma + mu)
    out = z.copy()
    out[:, index] = (top - mu) / sigma
    return out


def _encode(net: Network, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Node states and the pooled head's outputs of a batch."""
    types = batch.op_types if net.type_map is None else net.type_map[batch.op_types]
    n, edges, w = len(types), batch.edges, net.weights
    fwd, bwd = _Neighbours.of(edges[0], edges[1], n), _Neighbours.of(edges[1], edges[0], n)
    x = (net.spec.node_inputs(batch) - net.node_mu) / net.node_sigma
    h0 = np.maximum(net.type_rows[types] + x @ net.lin_in_columns, 0)
    padded = np.zeros((n + 1, h0.shape[1]), dtype=np.float32)  # h, then one zero row
    h = padded[:n]
    h[:] = h0
    for lin_fwd, lin_bwd, lin_self, bias in net.rounds:
        z = fwd.mean(padded) @ lin_fwd
        z += bwd.mean(padded) @ lin_bwd
        z += h @ lin_self
        z += bias
        h += np.maximum(z, 0, out=z)
    total, largest = _pool(h, batch.starts, batch.sizes)
    pooled = np.concatenate([
        total * net.sum_scale, total / batch.sizes[:, None].astype(np.float32), largest,
        (batch.globals - net.global_mu) / net.global_sigma,
    ], axis=1)
    z = np.maximum(_linear(w, "head.0", pooled), 0)
    z = np.maximum(_linear(w, "head.2", z), 0)
    return h, _linear(w, "head.4", z)


def forward(net: Network, graphs: list[GraphFeatures]) -> np.ndarray:
    """Standardised outputs for a batch of graphs, one row per graph."""
    batch = net.spec.batch(graphs)
    h, z = _encode(net, batch)
    if net.peak:
        z = _peak(net, h, z, batch)
    return _additive(net, h, z, batch) if net.additive else z


def operator_costs(net: Network, graph: GraphFeatures) -> tuple[np.ndarray, np.ndarray]:
    """One graph's additive metrics split up: per operator [ops, metrics] and overhead.

    They add up to what :func:`forward` predicts (in the metrics' units, not standardised);
    the network must have an additive readout.
    """
    batch = net.spec.batch([graph])
    h, z = _encode(net, batch)
    cost, overhead = _log_costs(net, h, z, batch)
    return np.exp(cost.astype(np.float64)), np.exp(overhead[0].astype(np.float64))
