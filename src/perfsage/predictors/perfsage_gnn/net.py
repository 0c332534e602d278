"""The network, in PyTorch Geometric (training only; ``runtime`` mirrors it in NumPy).

Both are built from one ``spec.ModelSpec`` (:meth:`PerfSAGENet.from_spec`): its node
columns, readouts, scaling and constants (``spec.NET_CONSTANTS``: ``SUM_SCALE``,
``NODE_SHARE_LOG``, ``RATE_BOUND``, whose roles are below).

Each operator's type embedding and standardised features go through a linear layer, then
``layers`` rounds of GraphSAGE message passing in both edge directions (one SAGEConv over
producer->consumer edges, one over their reverse) with residual connections. The readout
concatenates sum pooling (latency and energy add up over layers), mean and max pooling and
the graph's global features (sum pooling times ``SUM_SCALE``), and an MLP predicts every
metric at once.

With ``readout="additive"`` the additive metrics (``outputs.ADDITIVE_METRICS``) are instead
a sum over operators of a per-operator cost predicted from each operator's embedding, plus
the pooled head's output as a per-network overhead: total = sum_i exp(c_i) + exp(o). A
network of unseen size or depth then costs what its operators cost, which is what lets the
prediction carry over to search spaces never seen in training. Without rates, costs start
near an equal share of a typical total (``NODE_SHARE_LOG``).

With ``rates`` (additive readout only) an operator's cost is anchored to what it does:
``c_i = sum_k r_k * exp(d_ik) * b_ik`` over the ``features.COST_BASIS`` quantities b (its
MACs, activation bytes, weight bytes, 1), where ``r_k`` are learnt network-wide rates started
from a non-negative least-squares fit to the training totals and ``d_ik`` a per-operator
correction bounded to +-``RATE_BOUND`` (as is the overhead's, around its own rate). Costs
then grow with MACs and bytes by construction, which is what an unseen search space can
still be trusted to share with the training ones.

With ``peak`` the peak-memory metrics (``outputs.PEAK_METRICS``) are a maximum over
operators instead: each operator gets the activation bytes live while it runs
(``features.live_bytes``, its node column in the spec) and predicts its own peak as a
correction to them, ``p_i = log(live_i) + d_i``; the network's figure is ``max(max_i p_i,
o)``. A planner's peak is set at one step of the schedule, so this is the shape the answer
has on any network, however deep.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import SAGEConv, global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.utils import scatter

from perfsage.predictors.features import GLOBAL_FEATURES, OP_TYPES
from perfsage.predictors.perfsage_gnn.spec import NET_CONSTANTS, ModelSpec


class PerfSAGENet(nn.Module):
    """GraphSAGE over operator graphs with a sum/mean/max readout and one output per metric."""

    def __init__(self, n_types: int, n_node: int, n_global: int, n_out: int, *,
                 hidden: int = 128, layers: int = 4, embed: int = 32,
                 additive: list[int] | None = None, mu: list[float] | None = None,
                 sigma: list[float] | None = None, peak: list[int] | None = None,
                 rate_init: list[list[float]] | None = None,
                 constants: dict[str, float] | None = None) -> None:
        super().__init__()
        constants = constants or NET_CONSTANTS
        self.sum_scale, self.rate_bound = constants["sum_scale"], constants["rate_bound"]
        self.node_share_log = constants["node_share_log"]
        self.additive = list(additive or [])
        self.rates = rate_init is not None and bool(self.additive)
        if self.rates:
            # [len(COST_BASIS) + 1, additive metrics]: log rates, the last row the overhead's.
            self.rate_log = nn.Parameter(torch.tensor(rate_init, dtype=torch.float32))
        self.peak = list(peak or [])
        if self.peak:
            self._scaling_buffers("peak", self.peak, mu, sigma)
            self.peak_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                           nn.Linear(hidden, len(self.peak)))
        if self.additive:
            self._scaling_buffers("add", self.additive, mu, sigma)
            width = len(self.additive) * (len(rate_init) - 1 if self.rates else 1)
            self.node_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                           nn.Linear(hidden, width))
        self.embed = nn.Embedding(n_types, embed)
        self.lin_in = nn.Linear(embed + n_node, hidden)
        self.fwd = nn.ModuleList(SAGEConv(hidden, hidden) for _ in range(layers))
        self.bwd = nn.ModuleList(SAGEConv(hidden, hidden) for _ in range(layers))
        self.head = nn.Sequential(
            nn.Linear(3 * hidden + n_global, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_out),
        )

    def _scaling_buffers(self, prefix: str, metrics: list[int], mu: list[float],
                         sigma: list[float]) -> None:
        """``PREFIX_index``, ``PREFIX_mu`` and ``PREFIX_sigma`` of a readout's metrics."""
        index = torch.tensor(metrics)
        self.register_buffer(f"{prefix}_index", index, persistent=False)
        for name, values in (("mu", mu), ("sigma", sigma)):
            self.register_buffer(f"{prefix}_{name}",
                                 torch.tensor(values, dtype=torch.float32)[index],
                                 persistent=False)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> PerfSAGENet:
        """The network ``spec`` describes (weights freshly initialised)."""
        return cls(len(OP_TYPES) + 1, len(spec.node_columns), len(GLOBAL_FEATURES),
                   len(spec.metrics), hidden=spec.hidden, layers=spec.layers, embed=spec.embed,
                   additive=[spec.metrics.index(m) for m in spec.additive], mu=list(spec.mu),
                   sigma=list(spec.sigma), peak=[spec.metrics.index(m) for m in spec.peak],
                   rate_init=[list(r) for r in spec.rate_init] if spec.rate_init else None,
                   constants=spec.net_constants)

    def forward(self, op_type: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor,
                glob: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                live_kib: torch.Tensor | None = None,
                basis: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised outputs, one row per graph.

        ``live_kib``: log of the KiB live at each operator, for the peak readout;
        ``basis``: ``features.cost_basis`` of each operator, for the rates.
        """
        h, pooled = self.encode(op_type, x, edge_index, glob, batch, num_graphs)
        return self.readout(h, pooled, batch, num_graphs, live_kib, basis)

    def encode(self, op_type: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor,
               glob: torch.Tensor, batch: torch.Tensor, num_graphs: int,
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Node states and each graph's pooled row (sum, mean, max, globals): the readout's input.

        Apart from :meth:`readout` so that adaptation (``predictors.adapt``) can compute them
        once with the encoder frozen and refit only the readout's last layers.
        """
        h = torch.relu(self.lin_in(torch.cat([self.embed(op_type), x], dim=1)))
        reverse = edge_index.flip(0)
        for fwd, bwd in zip(self.fwd, self.bwd, strict=True):
            h = h + torch.relu(fwd(h, edge_index) + bwd(h, reverse))
        pooled = torch.cat([
            global_add_pool(h, batch, num_graphs) * self.sum_scale,
            global_mean_pool(h, batch, num_graphs),
            global_max_pool(h, batch, num_graphs),
            glob,
        ], dim=1)
        return h, pooled

    def readout(self, h: torch.Tensor, pooled: torch.Tensor, batch: torch.Tensor,
                num_graphs: int, live_kib: torch.Tensor | None = None,
                basis: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised outputs from :meth:`encode`'s node states and pooled rows."""
        out = self.head(pooled)
        if self.peak:
            node_peak = self.peak_head(h) + live_kib[:, None]
            floor = out[:, self.peak_index] * self.peak_sigma + self.peak_mu
            top = torch.maximum(scatter(node_peak, batch, 0, num_graphs, reduce="max"), floor)
            out = out.index_copy(1, self.peak_index, (top - self.peak_mu) / self.peak_sigma)
        if not self.additive:
            return out
        if self.rates:
            k = len(self.rate_log) - 1
            rb = self.rate_bound
            bound = rb * torch.tanh(self.node_head(h) / rb)
            terms = bound.view(-1, k, len(self.additive)) + self.rate_log[:k] + basis[:, :, None]
            cost = torch.logsumexp(terms, dim=1)
            overhead = self.rate_log[k] + rb * torch.tanh(out[:, self.add_index] / rb)
        else:
            # Per-operator log costs, started near an equal share of a typical total.
            cost = self.node_head(h) + (self.add_mu - self.node_share_log)
            overhead = out[:, self.add_index] * self.add_sigma + self.add_mu
        peak = torch.maximum(scatter(cost, batch, 0, num_graphs, reduce="max"), overhead)
        total = scatter(torch.exp(cost - peak[batch]), batch, 0, num_graphs, reduce="sum")
        log_total = peak + torch.log(total + torch.exp(overhead - peak))
        return out.index_copy(1, self.add_index, (log_total - self.add_mu) / self.add_sigma)
