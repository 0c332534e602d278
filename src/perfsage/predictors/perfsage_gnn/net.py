"""The network, in PyTorch Geometric (training only; ``runtime`` mirrors it in NumPy).

Each operator's type embedding and standardised features go through a linear layer, then
``layers`` rounds of GraphSAGE message passing in both edge directions (one SAGEConv over
producer->consumer edges, one over their reverse) with residual connections. The readout
concatenates sum pooling (latency and energy add up over layers), mean and max pooling and
the graph's global features, and an MLP predicts every metric at once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import SAGEConv, global_add_pool, global_max_pool, global_mean_pool

#: Sum pooling is scaled down so its magnitude stays near the mean's for ~100-op graphs.
SUM_SCALE = 1 / 16


class PerfSAGENet(nn.Module):
    """GraphSAGE over operator graphs with a sum/mean/max readout and one output per metric."""

    def __init__(self, n_types: int, n_node: int, n_global: int, n_out: int, *,
                 hidden: int = 128, layers: int = 4, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_types, embed)
        self.lin_in = nn.Linear(embed + n_node, hidden)
        self.fwd = nn.ModuleList(SAGEConv(hidden, hidden) for _ in range(layers))
        self.bwd = nn.ModuleList(SAGEConv(hidden, hidden) for _ in range(layers))
        self.head = nn.Sequential(
            nn.Linear(3 * hidden + n_global, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_out),
        )

    def forward(self, op_type: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor,
                glob: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """Standardised outputs, one row per graph."""
        h = torch.relu(self.lin_in(torch.cat([self.embed(op_type), x], dim=1)))
        reverse = edge_index.flip(0)
        for fwd, bwd in zip(self.fwd, self.bwd, strict=True):
            h = h + torch.relu(fwd(h, edge_index) + bwd(h, reverse))
        pooled = torch.cat([
            global_add_pool(h, batch, num_graphs) * SUM_SCALE,
            global_mean_pool(h, batch, num_graphs),
            global_max_pool(h, batch, num_graphs),
            glob,
        ], dim=1)
        return self.head(pooled)
