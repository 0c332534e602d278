"""Training the PerfSAGE network (CPU, PyTorch Geometric): resumable, early-stopped.

Training first writes down the model spec it trains (``spec``): the node columns the
hyper-parameters ask for, the scaling fitted to the training labels, the domain and a
fingerprint of the data; the network and its inputs are then built from that spec, as the
runtime builds them at prediction. The loss is the relative error of each metric
(``torch_training.relative_loss``) and the metric scaling is the one all predictors share
(``outputs``). Every epoch writes a checkpoint (safetensors + JSON, no pickle); a second
run with the same output folder continues from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import UsageError
from perfsage.predictors.domain import training_domain
from perfsage.predictors.features import GLOBAL_FEATURES, LOG_KIB, UNKNOWN_TYPE
from perfsage.predictors.graphset import GraphSet, without_rare_zeros
from perfsage.predictors.outputs import additive, decode, encode, mean_mape, output_scaling, peak
from perfsage.predictors.perfsage_gnn import weights
from perfsage.predictors.perfsage_gnn.config import parse_spec
from perfsage.predictors.perfsage_gnn.spec import (
    NET_CONSTANTS,
    Batch,
    ModelSpec,
    batch_basis,
    column_groups,
    data_sha256,
    node_columns,
    node_inputs,
)

CHECKPOINT = "checkpoint.safetensors"
READOUTS = ("pool", "additive")
CHECKPOINT_STATE = "checkpoint.json"


@dataclass
class Hyper:
    """Hyper-parameters, saved with the weights."""

    hidden: int = 128
    layers: int = 4
    embed: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-5
    batch: int = 64
    epochs: int = 80
    patience: int = 12
    seed: int = 0
    readout: str = "additive"  # or "pool": see net.PerfSAGENet
    #: Peak memory as a maximum over operators of their live bytes, corrected (net docstring).
    peak: bool = True
    #: Share of operators whose type is hidden ("unknown") in each training step, so that
    #: the unknown embedding learns what an operator costs from its shapes alone; prediction
    #: then treats types never seen in training as unknown.
    type_dropout: float = 0.1
    #: Additive costs anchored to MACs, bytes and operator count (net docstring); only
    #: with the additive readout.
    rates: bool = True
    #: Channel-padding node columns (``features.channel_alignment``): how far each
    #: operator's channels are from the blocks an NPU computes in.
    align: bool = True
    #: On Ethos-U targets, each operator's roofline cycles on the target's hardware
    #: (``roofline.node_columns``) as node columns and as a cost-basis quantity, so the
    #: additive readout learns a bounded correction to physics rather than physics itself.
    roofline: bool = True

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise UsageError(f"readout {self.readout!r}: expected one of {', '.join(READOUTS)}")
        if not 0 <= self.type_dropout < 1:
            raise UsageError(f"type_dropout {self.type_dropout}: expected 0 <= p < 1")


def roofline_target(hyper: Hyper, target: str) -> str | None:
    """The target whose roofline a run gives its network, or None.

    ``target`` itself where Vela's ini describes its hardware and ``Hyper.roofline`` asks
    for it.
    """
    from perfsage.errors import HardwareError
    from perfsage.targets.hardware import hardware

    if not hyper.roofline:
        return None
    try:
        hardware(target)
    except HardwareError:
        return None
    return target


def _columns(hyper: Hyper, peak_metrics: list[str], roofline: str | None) -> tuple[str, ...]:
    """The node columns a training run gives its network.

    The featurised ones; the live bytes where a peak metric is learnt (the peak readout
    starts from them); the channel alignment with ``Hyper.align``; the roofline costs on
    the hardware of ``roofline`` (a target name) where given.
    """
    return node_columns("features", *(["live_bytes"] if peak_metrics else []),
                        *(["alignment"] if hyper.align else []),
                        *(["roofline"] if roofline else []))


def _spec(train: GraphSet, val: GraphSet, target: str, hyper: Hyper,
          info: dict[str, Any] | None) -> dict[str, Any]:
    """The model spec (``config.json`` less what ``weights.save`` adds) a run trains.

    Output scaling, node and global standardisation and the domain come from ``train``;
    the readouts and node columns from ``hyper``; the data fingerprint from both sets.
    """
    scale = output_scaling(train.labels)
    peak_metrics = peak(scale) if hyper.peak else []
    additive_metrics = additive(scale) if hyper.readout == "additive" else []
    hw_target = roofline_target(hyper, target)
    columns = _columns(hyper, peak_metrics, hw_target)
    groups = column_groups(columns)
    batch = Batch(train.graphs, hw_target)
    nodes = node_inputs(batch, groups)
    glob = np.stack([g.globals for g in train.graphs])

    def std(a: np.ndarray) -> list[float]:
        s = a.std(axis=0)
        return np.where(s > 1e-6, s, 1.0).tolist()

    rates = (rate_init(batch, groups, train.labels, additive_metrics)
             if hyper.rates and additive_metrics else None)
    return {
        "target": target, **scale, "additive": additive_metrics, "peak": peak_metrics,
        "rate_init": rates, "node_columns": list(columns), "roofline_target": hw_target,
        "node_mu": nodes.mean(axis=0).tolist(), "node_sigma": std(nodes),
        "global_columns": list(GLOBAL_FEATURES), "global_mu": glob.mean(axis=0).tolist(),
        "global_sigma": std(glob), "net_constants": dict(NET_CONSTANTS),
        "domain": training_domain(train.graphs), "hyper": asdict(hyper),
        "trained": {"dataset": None, "holdout_space": None, **(info or {}),
                    "train_graphs": len(train), "val_graphs": len(val),
                    "data_sha256": data_sha256(target, {"train": train, "val": val})},
    }


def rate_init(batch: Batch, groups, labels: dict[str, np.ndarray], metrics: list[str],
              most: int = 4000) -> list[list[float]]:
    """Log network-wide rates per cost-basis quantity and of the overhead, per metric.

    A non-negative least-squares fit of each total to the graph's summed basis quantities
    (``spec.basis_names(groups)``) and a constant, weighted to minimise relative error (on
    the first ``most`` graphs of ``batch`` at most).
    """
    from scipy.optimize import nnls

    n = min(most, len(batch.sizes))
    per_op = np.exp(batch_basis(batch, groups).astype(np.float64))
    sums = np.add.reduceat(per_op, batch.starts, axis=0)[:n]
    design = np.column_stack([sums, np.ones(n)])
    out = []
    for m in metrics:
        y = np.asarray(labels[m][:n], dtype=np.float64)
        coef, _ = nnls(design / y[:, None], np.ones(len(y)))
        # A rate the fit zeroes still starts small but finite: 1/1000 of what alone explains y.
        floor = 1e-3 * np.median(y[:, None] / design, axis=0)
        out.append(np.log(np.maximum(coef, floor)).tolist())
    return np.array(out).T.tolist()


def _pyg(data: GraphSet, spec: ModelSpec) -> list:
    """One PyG ``Data`` per graph: standardised node columns as ``spec`` lists them."""
    import torch
    from torch_geometric.data import Data

    y = torch.from_numpy(encode(data.labels, spec.scale))
    batch = spec.batch(data.graphs)
    x = ((spec.node_inputs(batch) - np.asarray(spec.node_mu))
         / np.asarray(spec.node_sigma)).astype(np.float32)
    glob = ((batch.globals - np.asarray(spec.global_mu))
            / np.asarray(spec.global_sigma)).astype(np.float32)
    live = batch.live - LOG_KIB if spec.peak else None
    basis = spec.basis(batch) if spec.rate_init is not None else None
    out = []
    for i, (g, start, size) in enumerate(zip(data.graphs, batch.starts.tolist(),
                                             batch.sizes.tolist(), strict=True)):
        rows = slice(start, start + size)
        extra = {}
        if live is not None:
            extra["live_kib"] = torch.from_numpy(live[rows])
        if basis is not None:
            extra["basis"] = torch.from_numpy(basis[rows])
        out.append(Data(
            op_type=torch.from_numpy(g.op_types), num_nodes=size,
            x=torch.from_numpy(x[rows]), **extra, edge_index=torch.from_numpy(g.edges),
            glob=torch.from_numpy(glob[i:i + 1]), y=y[i:i + 1],
        ))
    return out


def _forward(net, b, op_type):
    return net(op_type, b.x, b.edge_index, b.glob, b.batch, b.num_graphs,
               getattr(b, "live_kib", None), getattr(b, "basis", None))


def _predict(net, loader) -> np.ndarray:
    import torch

    net.eval()
    rows = []
    with torch.no_grad():
        for b in loader:
            rows.append(_forward(net, b, b.op_type).numpy())
    net.train()
    return np.concatenate(rows)


def fit(train: GraphSet, val: GraphSet, target: str, out: str | Path,
        hyper: Hyper | None = None, info: dict[str, Any] | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        init: str | Path | None = None) -> dict[str, Any]:
    """Train on ``train``, early-stop on the MAPE over ``val``; weights go to ``out``.

    ``init``: a weights folder to start from instead of fresh weights: more epochs, or the
    same network fine-tuned on more data. It must read the columns and predict the metrics
    this run derives; its input and output scaling is kept (see ``_initial_weights``).
    Returns the final training state (epochs run, best validation MAPE, wall time).
    """
    import torch
    from safetensors.torch import load_file, save_file
    from torch_geometric.loader import DataLoader

    from perfsage.predictors.perfsage_gnn.net import PerfSAGENet
    from perfsage.predictors.torch_training import loss_weights, relative_loss

    hyper = hyper or Hyper()
    train, val = without_rare_zeros(train), without_rare_zeros(val)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(hyper.seed)
    # One intra-op thread: these graphs are small, and on a busy 2-core machine a second
    # thread made a batch 40x slower (1.5 s vs 37 ms) through oversubscription.
    torch.set_num_threads(1)
    draft = _spec(train, val, target, hyper, info)
    start = _initial_weights(init, draft) if init is not None else None
    spec = parse_spec(draft, source=f"the spec of {out}")
    scale = spec.scale
    train_set, val_set = _pyg(train, spec), _pyg(val, spec)
    val_loader = DataLoader(val_set, batch_size=256)
    net = PerfSAGENet.from_spec(spec)
    if start is not None:
        net.load_state_dict(start)
    opt = torch.optim.AdamW(net.parameters(), lr=hyper.lr, weight_decay=hyper.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hyper.epochs)
    sigma, log_mask = loss_weights(scale)
    state = {"epoch": 0, "best_val_mape": float("inf"), "best_epoch": 0, "stale": 0,
             "wall_s": 0.0, "target": target, "hyper": asdict(hyper)}
    if (out / CHECKPOINT_STATE).exists():
        saved = json.loads((out / CHECKPOINT_STATE).read_text())
        if saved.get("target") == target and saved.get("hyper") == asdict(hyper):
            state = saved
            tensors = load_file(str(out / CHECKPOINT))
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            opt.load_state_dict(_optimizer_state(tensors, state["optimizer"]))
            sched.load_state_dict(state["scheduler"])

    def export(epoch_net) -> None:
        tensors = {k: v.detach().numpy() for k, v in epoch_net.state_dict().items()}
        weights.save(out, tensors, draft)

    while state["epoch"] < hyper.epochs and state["stale"] < hyper.patience:
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(hyper.seed * 1000 + state["epoch"])
        loader = DataLoader(train_set, batch_size=hyper.batch, shuffle=True, generator=generator)
        losses = []
        for b in loader:
            opt.zero_grad()
            op_type = b.op_type
            if hyper.type_dropout:
                hidden = torch.rand(len(op_type), generator=generator) < hyper.type_dropout
                op_type = torch.where(hidden, UNKNOWN_TYPE, op_type)
            pred = _forward(net, b, op_type)
            loss = relative_loss(pred, b.y, sigma, log_mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        val_mape = mean_mape(decode(_predict(net, val_loader), scale), val.labels, scale)
        state["epoch"] += 1
        state["wall_s"] += time.perf_counter() - start
        if val_mape < state["best_val_mape"]:
            state.update(best_val_mape=val_mape, best_epoch=state["epoch"], stale=0)
            export(net)
        else:
            state["stale"] += 1
        tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
        tensors.update(_optimizer_tensors(opt))
        save_file(tensors, str(out / (CHECKPOINT + ".tmp")))
        (out / (CHECKPOINT + ".tmp")).replace(out / CHECKPOINT)
        state["optimizer"] = _optimizer_meta(opt)
        state["scheduler"] = sched.state_dict()
        (out / (CHECKPOINT_STATE + ".tmp")).write_text(json.dumps(state))
        (out / (CHECKPOINT_STATE + ".tmp")).replace(out / CHECKPOINT_STATE)
        if progress:
            progress({**state, "train_loss": float(np.mean(losses)), "val_mape": val_mape})
    return state


#: What a network to start from must share with the run: what it reads and predicts.
_INIT_STRUCTURE = ("node_columns", "metrics", "modes", "additive", "peak", "roofline_target")
#: What a run takes over from the network it starts from: its weights were learnt on inputs
#: and outputs standardised by these, so rederiving them from new data would shift every
#: input under the learnt weights.
_INIT_SCALING = ("mu", "sigma", "constants", "node_mu", "node_sigma", "global_mu",
                 "global_sigma", "rate_init")


def _initial_weights(folder: str | Path, draft: dict[str, Any]) -> dict:
    """The network tensors of a weights folder to start from; ``draft`` takes its scaling.

    The folder's network must read the columns and predict the metrics (in the same modes
    and readouts) that ``draft`` describes; its input and output standardisation replace
    ``draft``'s, so it can go on learning on data it has not seen (e.g. a larger dataset).

    Raises:
        UsageError: the folder's network reads other columns or predicts other metrics
            (trained with other options, or for another target).
    """
    import torch

    tensors, config = weights.load(folder)
    for key in _INIT_STRUCTURE:
        if config.get(key) != draft.get(key):
            raise UsageError(f"--init {folder}: its {key} differs from what this run derives "
                             "(trained with other options or labels); start without --init")
    draft.update({key: config[key] for key in _INIT_SCALING if key in config})
    return {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}


def _optimizer_tensors(opt) -> dict:
    sd = opt.state_dict()
    return {f"opt.{pid}.{k}": v for pid, st in sd["state"].items() for k, v in st.items()}


def _optimizer_meta(opt) -> dict:
    sd = opt.state_dict()
    return {"param_groups": sd["param_groups"],
            "state_keys": {str(pid): list(st) for pid, st in sd["state"].items()}}


def _optimizer_state(tensors: dict, meta: dict) -> dict:
    state = {int(pid): {k: tensors[f"opt.{pid}.{k}"] for k in keys}
             for pid, keys in meta["state_keys"].items()}
    return {"state": state, "param_groups": meta["param_groups"]}
