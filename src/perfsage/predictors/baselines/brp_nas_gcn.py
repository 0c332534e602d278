"""The BRP-NAS latency predictor: a GCN over one-hot operator types and the adjacency alone.

Dudziak et al., "BRP-NAS: Prediction-based NAS using GCNs", NeurIPS 2020
(https://proceedings.neurips.cc/paper/2020/hash/768e78024aa8fdb9b8fe87be86f64745-Abstract.html),
code at https://github.com/SamsungLabs/eagle. Each operator is a node whose only feature is
its one-hot type; an extra global node is connected to every node; stacked graph
convolutions (each followed by LayerNorm, ReLU and dropout) propagate over the adjacency,
and a fully connected layer reads the global node's embedding out.

It sees no shapes, MACs or bit widths, on purpose: that is what BRP-NAS gets on its
cell-based search spaces, and comparing it with PerfSAGE (which sees them) measures what
shapes are worth on real TFLite graphs.

Defaults follow the authors' latency configuration
``configs/predictors/lat_gcn_nasbench201_desktop.yaml`` in SamsungLabs/eagle: 4 layers of
600 hidden units, dropout 0.002, AdamW, learning rate 4e-4, weight decay 5e-4, at most 250
epochs, early-stopping patience 35, uniform +-1/sqrt(fan-out) initialisation ("thomas").
Deliberate differences, each for a stated reason:

* Loss: the authors minimise an L1 loss (summed) on raw latency; here
  ``torch_training.relative_loss`` on standardised log targets, because the benchmark scores
  MAPE over metrics spanning orders of magnitude (raw L1 would serve only the slowest
  models), and because every torch predictor here shares it, so only the architecture and
  inputs differ. One output per metric instead of one network per metric.
* Batches of 32 graphs (the authors use 1) for CPU throughput, and the shared loop's cosine
  schedule instead of ReduceLROnPlateau(factor 0.5, patience 10).
* Adjacency: the authors' code (``eagle/predictors/utils.py:normalize``) leaves the directed
  adjacency with self-loops unnormalised. TFLite graphs have ~70 operators (up to ~200)
  instead of NAS-Bench-201's 8 nodes, so here the edges are undirected and symmetrically
  normalised, D^-1/2 (A + I) D^-1/2 (Kipf & Welling, 2017), which keeps the global node's
  sum bounded on large graphs.
* float32 instead of float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.predictors.base import Predictor
from perfsage.predictors.features import UNKNOWN_TYPE, GraphFeatures
from perfsage.predictors.outputs import decode, encode, mean_mape, output_scaling

#: One-hot width: every OP_TYPES entry, "unknown", and the global node's own type.
INPUT_TYPES = UNKNOWN_TYPE + 2
GLOBAL_TYPE = UNKNOWN_TYPE + 1
_PREDICT_BATCH = 32  # measured faster than 256 on CPU (less allocator churn)


def normalised_adjacency(g: GraphFeatures) -> np.ndarray:
    """Dense D^-1/2 (A + I) D^-1/2 over the operators plus a global node at index 0.

    A is the undirected operator graph (node i + 1 is operator i) with the global node
    joined to every operator; D is the degree of A + I.
    """
    n = len(g.op_types) + 1
    a = np.zeros((n, n), dtype=np.float64)
    a[g.edges[0] + 1, g.edges[1] + 1] = 1.0
    a = np.maximum(a, a.T)
    a[0, :] = a[:, 0] = 1.0
    np.fill_diagonal(a, 1.0)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return a * d[:, None] * d[None, :]


def _prepare(g: GraphFeatures) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(node types with the global node first, target rows, source columns, weights)."""
    adjacency = normalised_adjacency(g)
    rows, cols = np.nonzero(adjacency)
    types = np.concatenate([[GLOBAL_TYPE], g.op_types]).astype(np.int64)
    return types, rows, cols, adjacency[rows, cols].astype(np.float32)


def _collate(prepared: list) -> tuple:
    """Graphs as one disjoint union: (types, rows, cols, weights, global node of each)."""
    import torch

    sizes = np.array([len(p[0]) for p in prepared])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    shift = np.repeat(starts, [len(p[1]) for p in prepared])  # each edge's node offset
    types, rows, cols, weights = (np.concatenate(part) for part in zip(*prepared, strict=True))
    return tuple(torch.from_numpy(a) for a in (types, rows + shift, cols + shift, weights,
                                               starts))


def _network(hidden: int, layers: int, dropout: float, outputs: int):
    """The BRP-NAS GCN as a torch module (built here so torch is imported only on use)."""
    import torch
    from torch import nn

    class GCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [INPUT_TYPES] + [hidden] * layers
            bound = 1.0 / np.sqrt(hidden)  # the authors' "thomas" initialisation
            self.weights = nn.ParameterList(
                nn.Parameter(torch.empty(w, hidden).uniform_(-bound, bound))
                for w in widths[:-1])
            self.biases = nn.ParameterList(
                nn.Parameter(torch.empty(hidden).uniform_(-bound, bound)) for _ in range(layers))
            self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(hidden, outputs)

        def forward(self, batch):
            types, rows, cols, weights, roots = batch
            x = None
            for i, (weight, bias, norm) in enumerate(
                    zip(self.weights, self.biases, self.norms, strict=True)):
                # One-hot input times W is a row lookup: same result, no one-hot matrix.
                support = weight[types] if i == 0 else x @ weight
                x = torch.zeros(len(types), weight.shape[1]).index_add_(
                    0, rows, support[cols] * weights[:, None]) + bias
                x = self.dropout(torch.relu(norm(x)))
            return self.fc(x[roots])

    return GCN()


class BrpNasGCN(Predictor):
    """BRP-NAS's GCN: one-hot operator types, normalised adjacency, global-node readout."""

    name = "brp-nas-gcn"
    needs_torch = True

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The authors' latency settings (see the module docstring), batch 32, seed 0."""
        return {"layers": 4, "hidden": 600, "dropout": 0.002, "lr": 4e-4,
                "weight_decay": 5e-4, "epochs": 250, "patience": 35, "batch": 32, "seed": 0}

    def _build(self, outputs: int):
        p = self.params
        return _network(p["hidden"], p["layers"], p["dropout"], outputs)

    def _fit(self, train: Any, val: Any | None) -> None:
        import torch

        from perfsage.predictors.torch_training import (
            loss_weights,
            relative_loss,
            train_early_stopped,
        )

        seed, size = self.params["seed"], self.params["batch"]
        torch.manual_seed(seed)
        torch.set_num_threads(1)  # small graphs on a shared machine: threads only contend
        self.scale_ = output_scaling(train.labels)
        targets = torch.from_numpy(encode(train.labels, self.scale_))
        graphs = [_prepare(g) for g in train.graphs]
        val = val if val is not None and len(val) > 0 else train
        val_graphs = [_prepare(g) for g in val.graphs]
        self.net_ = self._build(len(self.scale_["metrics"]))
        sigma, log_mask = loss_weights(self.scale_)

        def batches(epoch: int):
            order = np.random.default_rng(seed * 1000 + epoch).permutation(len(graphs))
            for at in range(0, len(order), size):
                chunk = order[at:at + size]
                yield _collate([graphs[i] for i in chunk]), targets[chunk]

        def score() -> float:
            return mean_mape(decode(self._outputs(val_graphs), self.scale_), val.labels,
                             self.scale_)

        result = train_early_stopped(
            self.net_, batches, lambda pred, true: relative_loss(pred, true, sigma, log_mask),
            score, epochs=self.params["epochs"], patience=self.params["patience"],
            lr=self.params["lr"], weight_decay=self.params["weight_decay"])
        self.training_ = {"epochs": result.epochs, "best_epoch": result.best_epoch,
                          "best_val_mape": result.best_score, "wall_s": result.wall_s}

    def _outputs(self, prepared: list) -> np.ndarray:
        """Standardised outputs [graphs, metrics], in fixed batches (reproducible floats)."""
        import torch

        self.net_.eval()
        with torch.no_grad():
            return np.concatenate([
                self.net_(_collate(prepared[at:at + _PREDICT_BATCH])).numpy()
                for at in range(0, len(prepared), _PREDICT_BATCH)])

    def _predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        return decode(self._outputs([_prepare(g) for g in graphs]), self.scale_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        tensors = {k: v.detach().numpy().astype(np.float32)
                   for k, v in self.net_.state_dict().items()}
        return tensors, {"scale": self.scale_, "training": getattr(self, "training_", {})}

    def _restore(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        import torch

        self.scale_, self.training_ = state["scale"], state.get("training", {})
        self.net_ = self._build(len(self.scale_["metrics"]))
        self.net_.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
        self.net_.eval()
