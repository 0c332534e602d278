"""Training the block cost network (torch, CPU): relative loss on network totals.

Training only; prediction runs the NumPy forward in ``predictor``. The layer names here
are the tensor names that forward reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.predictors.block.features import BLOCK_FEATURES
from perfsage.predictors.features import GLOBAL_FEATURES


def _net(params: dict[str, Any], metrics: int, offsets: dict[str, np.ndarray]):
    import torch
    from torch import nn

    from perfsage.predictors.block.predictor import N_TYPES, OVERHEAD_GLOBALS, OVERHEAD_INDEX

    class BlockNet(nn.Module):
        """Block MLP and overhead layer; log costs in natural log units of each metric."""

        def __init__(self) -> None:
            super().__init__()
            e, h = params["embed"], params["hidden"]
            self.head_emb = nn.Embedding(N_TYPES, e)
            self.member_emb = nn.Embedding(N_TYPES, e)
            layers, width = [], len(BLOCK_FEATURES) + 2 * e + len(GLOBAL_FEATURES)
            for _ in range(params["layers"]):
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            self.mlp = nn.Sequential(*layers, nn.Linear(width, metrics))
            self.overhead = nn.Linear(len(OVERHEAD_GLOBALS), metrics)
            self.register_buffer("overhead_index", torch.from_numpy(OVERHEAD_INDEX),
                                 persistent=False)
            for name, value in offsets.items():
                self.register_buffer(name, torch.tensor(value, dtype=torch.float32))
            for layer in (self.mlp[-1], self.overhead):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

        def forward(self, b: dict[str, Any]):
            """Log block costs [blocks, metrics] and log overheads [graphs, metrics]."""
            members = torch.zeros(len(b["x"]), self.member_emb.embedding_dim)
            members = members.index_add(0, b["mblock"], self.member_emb(b["mtype"]))
            h = torch.cat([b["x"], self.head_emb(b["head"]), members, b["glob"][b["seg"]]], 1)
            return (self.mlp(h) * self.spread + self.block_offset,
                    self.overhead(b["glob"][:, self.overhead_index]) * self.spread
                    + self.overhead_offset)

    return BlockNet()


def _segment_logsumexp(values, seg, graphs: int):
    """log(sum(exp(values))) over the rows of each graph."""
    import torch

    index = seg[:, None].expand_as(values)
    top = torch.full((graphs, values.shape[1]), -1e30).scatter_reduce(
        0, index, values.detach(), "amax")
    total = torch.zeros(graphs, values.shape[1]).index_add(0, seg, torch.exp(values - top[seg]))
    return torch.log(total) + top


def standardised_totals(log_cost, log_over, seg, graphs: int, peak, sharpness: float, mu,
                        sigma, log1p):
    """Standardised predictions [graphs, metrics], as ``outputs.encode`` would give them."""
    import torch

    summed = _segment_logsumexp(log_cost, seg, graphs)
    maxed = _segment_logsumexp(sharpness * log_cost, seg, graphs) / sharpness
    log_total = torch.logaddexp(torch.where(peak, maxed, summed), log_over)
    value = torch.where(log1p, torch.nn.functional.softplus(log_total), log_total)
    return (value - mu) / sigma


def _torch_batch(b: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(v) for k, v in b.items()}


def fit_net(predictor, train, y: np.ndarray, val, val_labels: dict[str, np.ndarray],
            mean_blocks: float) -> dict[str, np.ndarray]:
    """Train the network of ``predictor`` on prepared blocks; returns its NumPy tensors."""
    import torch

    from perfsage.predictors.block.predictor import is_peak
    from perfsage.predictors.torch_training import loss_weights, relative_loss, train_early_stopped

    params, scale = predictor.params, predictor.scale_
    torch.manual_seed(params["seed"])
    torch.set_num_threads(1)  # small batches; a second thread only contends on 2 cores
    metrics = scale["metrics"]
    offsets = predictor.typical_offsets(mean_blocks)
    net = _net(params, len(metrics), offsets)
    sigma, log_mask = loss_weights(scale)
    learn = torch.tensor([scale["modes"][m] != "constant" for m in metrics])
    consts = {
        "peak": torch.tensor([is_peak(m) for m in metrics]),
        "sharpness": float(params["sharpness"]),
        "mu": torch.tensor(scale["mu"], dtype=torch.float32), "sigma": sigma,
        "log1p": torch.tensor([scale["modes"][m] == "log1p" for m in metrics]),
    }
    y_t = torch.from_numpy(y)
    rng = np.random.default_rng(params["seed"])
    graphs = len(y)

    def batches(epoch: int):  # noqa: ARG001 - the loop's signature
        order = rng.permutation(graphs)
        for start in range(0, graphs, params["batch"]):
            idx = order[start:start + params["batch"]]
            yield (_torch_batch(train.batch(idx)), len(idx)), y_t[idx]

    def forward(inputs):
        b, n = inputs
        log_cost, log_over = net(b)
        z = standardised_totals(log_cost, log_over, b["seg"], n, **consts)
        return z, log_cost, b.get("layer_y")

    def loss(pred, true):
        z, log_cost, layer_y = pred
        value = relative_loss(z[:, learn], true[:, learn], sigma[learn], log_mask[learn])
        if layer_y is not None:
            known = ~torch.isnan(layer_y)
            if known.any():  # per-block figures: log-space L1, a relative error per block
                diff = log_cost[known] - torch.log(layer_y[known])
                value = value + params["layer_weight"] * diff.abs().mean()
        return value

    val_batch = (_torch_batch(val.everything()), len(val.glob))

    def score() -> float:
        z = forward(val_batch)[0].numpy()
        return predictor.validation_mape(z, val_labels)

    train_early_stopped(_Wrapped(net, forward), batches, loss, score, epochs=params["epochs"],
                        patience=params["patience"], lr=params["lr"],
                        weight_decay=params["weight_decay"],
                        progress=getattr(predictor, "progress", None))
    return {k: v.detach().numpy().astype(np.float64 if k in offsets else np.float32)
            for k, v in net.state_dict().items()} | {k: np.asarray(v) for k, v in offsets.items()}


class _Wrapped:
    """The net as ``train_early_stopped`` calls it: ``net(inputs)`` plus its module methods."""

    def __init__(self, net, forward) -> None:
        self.net, self.forward = net, forward

    def __call__(self, inputs):
        return self.forward(inputs)

    def __getattr__(self, name: str):
        return getattr(self.net, name)
