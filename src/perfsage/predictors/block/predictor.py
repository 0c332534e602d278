"""The block-based predictor: learn what each block costs, add the blocks up.

Networks are built from few kinds of blocks (a convolution with its activation, a residual
ADD, a pooling step), and a block costs much the same wherever it appears, so a model of
block cost learns from far fewer networks than one of whole networks (block-based
predictors report 2.6 % latency, 4 % energy and 1.5 % memory error from small datasets).

Per metric, each block gets a cost ``c_b = exp(f(block))`` from one small MLP, and a
network gets an overhead ``exp(g(globals))`` (start-up, command stream, I/O DMA; from the
operator count and I/O sizes only, see ``OVERHEAD_GLOBALS``). Totals:

* additive metrics (latency, cycles, energy, flash, DRAM bytes, CPU operators):
  ``sum_b c_b + overhead``, because the hardware runs the blocks one after another and
  each one's time, energy and weights add up;
* peak-memory metrics (names containing ``sram`` or ``arena``): ``smoothmax_b c_b +
  overhead``, because a planner reuses memory between blocks and the peak is set by the
  hungriest block (its tensors plus the skip tensors live across it); a sum would grow with
  depth, which peak memory does not. The smooth max, ``logsumexp(k log c) / k`` with
  sharpness ``k``, keeps a gradient for every block during training.

Training (torch) minimises the shared relative loss on the totals only; prediction is
NumPy. ``block_costs`` returns the per-block figures behind ``perfsage predict --per-layer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors.base import Predictor
from perfsage.predictors.block.features import BLOCK_FEATURES, GraphBlocks, graph_blocks
from perfsage.predictors.features import GLOBAL_FEATURES, OP_TYPES, GraphFeatures
from perfsage.predictors.outputs import PEAK_METRICS, decode, encode, mean_mape, output_scaling

N_TYPES = len(OP_TYPES) + 1
#: What the per-network overhead may depend on. Not MACs or weight bytes: given those, the
#: overhead alone could explain most of a total (it took half the latency and flash when it
#: saw every global), and the per-block figures would no longer say where the cost goes.
OVERHEAD_GLOBALS = ("operators", "input_bytes", "output_bytes")
OVERHEAD_INDEX = np.array([GLOBAL_FEATURES.index(f) for f in OVERHEAD_GLOBALS])


def is_peak(metric: str) -> bool:
    """Whether a metric is a peak (aggregated with a max over blocks), not a sum.

    The same rule as the GNN's peak readout (``outputs.PEAK_METRICS``).
    """
    return metric in PEAK_METRICS


@dataclass
class _Prepared:
    """Blocks of many graphs, concatenated; block and member rows grouped by graph."""

    blocks: list[GraphBlocks]
    x: np.ndarray  # float32 [blocks, features], standardised
    head: np.ndarray  # int64 [blocks]
    block_at: np.ndarray  # int64 [graphs + 1]
    mtype: np.ndarray  # int64 [members]
    mblock: np.ndarray  # int64 [members]: block index within its graph
    member_at: np.ndarray  # int64 [graphs + 1]
    glob: np.ndarray  # float32 [graphs, globals], standardised
    layer_y: np.ndarray | None = None  # float32 [blocks, metrics]: per-block labels or NaN

    def batch(self, graphs: np.ndarray) -> dict[str, np.ndarray]:
        """The rows of ``graphs`` with graph and block indices renumbered from zero."""
        rows, _ = _ranges(self.block_at, graphs)
        mrows, local_m = _ranges(self.member_at, graphs)
        counts = np.diff(self.block_at)[graphs]
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out = {"x": self.x[rows], "head": self.head[rows],
               "seg": np.repeat(np.arange(len(graphs)), counts),
               "mtype": self.mtype[mrows], "mblock": self.mblock[mrows] + first[local_m],
               "glob": self.glob[graphs]}
        if self.layer_y is not None:
            out["layer_y"] = self.layer_y[rows]
        return out

    def everything(self) -> dict[str, np.ndarray]:
        """``batch`` of every graph."""
        return self.batch(np.arange(len(self.glob)))


def _ranges(at: np.ndarray, graphs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of ``graphs`` (rows ``at[g]:at[g+1]``) and the batch position of each."""
    counts = at[graphs + 1] - at[graphs]
    owner = np.repeat(np.arange(len(graphs)), counts)
    starts = np.repeat(at[graphs] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(counts.sum()) + starts, owner


def _prepare(graphs: list[GraphFeatures], feat: dict[str, np.ndarray],
             blocks: list[GraphBlocks] | None = None) -> _Prepared:
    blocks = blocks or [graph_blocks(g) for g in graphs]
    x = np.concatenate([b.x for b in blocks])
    glob = np.stack([g.globals for g in graphs])
    return _Prepared(
        blocks, ((x - feat["x_mu"]) / feat["x_sigma"]).astype(np.float32),
        np.concatenate([b.head_type for b in blocks]),
        np.concatenate([[0], np.cumsum([len(b.x) for b in blocks])]).astype(np.int64),
        np.concatenate([b.member_type for b in blocks]),
        np.concatenate([b.member_block for b in blocks]),
        np.concatenate([[0], np.cumsum([len(b.member_type) for b in blocks])]).astype(np.int64),
        ((glob - feat["g_mu"]) / feat["g_sigma"]).astype(np.float32))


def _standardisation(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sigma = a.std(axis=0)
    return a.mean(axis=0), np.where(sigma > 1e-6, sigma, 1.0)


# -- NumPy forward (prediction) -------------------------------------------------------------

def _numpy_costs(t: dict[str, np.ndarray], b: dict[str, np.ndarray],
                 layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Log block costs [blocks, metrics] and log overheads [graphs, metrics]."""
    members = np.zeros((len(b["x"]), t["member_emb.weight"].shape[1]), dtype=np.float32)
    np.add.at(members, b["mblock"], t["member_emb.weight"][b["mtype"]])
    h = np.concatenate([b["x"], t["head_emb.weight"][b["head"]], members,
                        b["glob"][b["seg"]]], axis=1)
    for i in range(layers):
        h = np.maximum(h @ t[f"mlp.{2 * i}.weight"].T + t[f"mlp.{2 * i}.bias"], 0)
    out = h @ t[f"mlp.{2 * layers}.weight"].T + t[f"mlp.{2 * layers}.bias"]
    over = b["glob"][:, OVERHEAD_INDEX] @ t["overhead.weight"].T + t["overhead.bias"]
    return (out.astype(np.float64) * t["spread"] + t["block_offset"],
            over.astype(np.float64) * t["spread"] + t["overhead_offset"])


class BlockPredictor(Predictor):
    """Per-block cost MLP, summed (or smooth-maxed for peak memory) plus a network overhead."""

    name = "block"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Network size, optimiser and early stopping settings."""
        return {"hidden": 64, "layers": 2, "embed": 8, "lr": 3e-3, "weight_decay": 1e-4,
                "batch": 64, "epochs": 60, "patience": 10, "seed": 0, "sharpness": 20.0,
                # Per-layer Vela cycles (``vela_layers.collect``): an .npz, or None.
                "layer_labels": None, "layer_weight": 0.5}

    # -- fitting ---------------------------------------------------------------------------

    def _fit(self, train: Any, val: Any | None) -> None:
        from perfsage.predictors.block.train import fit_net

        if val is None or len(val) == 0:
            val = train
        self.scale_ = output_scaling(train.labels)
        blocks = [graph_blocks(g) for g in train.graphs]
        x_mu, x_sigma = _standardisation(np.concatenate([b.x for b in blocks]))
        g_mu, g_sigma = _standardisation(np.stack([g.globals for g in train.graphs]))
        self.feat_ = {"x_mu": x_mu, "x_sigma": x_sigma, "g_mu": g_mu, "g_sigma": g_sigma}
        mean_blocks = float(np.mean([len(b.x) for b in blocks]))
        prepared = _prepare(train.graphs, self.feat_, blocks)
        if self.params["layer_labels"]:
            from perfsage.predictors.block.vela_layers import block_targets

            prepared.layer_y = block_targets(self.params["layer_labels"], train.model_ids,
                                             train.labels, [b.split for b in blocks],
                                             self.scale_["metrics"])
        self.tensors_ = fit_net(self, prepared,
                                encode(train.labels, self.scale_),
                                _prepare(val.graphs, self.feat_), val.labels, mean_blocks)

    def typical_offsets(self, mean_blocks: float) -> dict[str, np.ndarray]:
        """Initial log offsets: outputs near zero give totals near the training mean."""
        typical = []
        for i, m in enumerate(self.scale_["metrics"]):
            mode, mu = self.scale_["modes"][m], self.scale_["mu"][i]
            typical.append(mu if mode == "log" else np.log(max(np.expm1(mu), 1e-2)))
        typical = np.array(typical)
        peak = np.array([is_peak(m) for m in self.scale_["metrics"]])
        return {"spread": np.array(self.scale_["sigma"]),
                "block_offset": np.where(peak, typical, typical - np.log(mean_blocks)),
                "overhead_offset": typical - 2.0}

    def validation_mape(self, z: np.ndarray, labels: dict[str, np.ndarray]) -> float:
        """Mean MAPE of standardised outputs ``z`` (what early stopping watches)."""
        return mean_mape(decode(z, self.scale_), labels, self.scale_)

    # -- prediction ------------------------------------------------------------------------

    def _aggregate(self, prepared: _Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block costs [blocks, metrics], overheads and totals [graphs, metrics]."""
        b = prepared.everything()
        log_cost, log_over = _numpy_costs(self.tensors_, b, self.params["layers"])
        cost, over = np.exp(log_cost), np.exp(log_over)
        graphs = len(prepared.glob)
        sums = np.zeros((graphs, cost.shape[1]))
        np.add.at(sums, b["seg"], cost)
        k = self.params["sharpness"]
        top = np.full((graphs, cost.shape[1]), -np.inf)
        np.maximum.at(top, b["seg"], log_cost)
        top = np.where(np.isfinite(top), top, 0.0)
        soft = np.zeros_like(sums)
        np.add.at(soft, b["seg"], np.exp(k * (log_cost - top[b["seg"]])))
        peak_total = np.where(soft > 0, np.exp(top + np.log(np.maximum(soft, 1e-300)) / k), 0)
        peak = np.array([is_peak(m) for m in self.metrics_])
        return cost, over, np.where(peak, peak_total, sums) + over

    def _predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        _, _, totals = self._aggregate(_prepare(graphs, self.feat_))
        out = {}
        for i, m in enumerate(self.metrics_):
            mode = self.scale_["modes"][m]
            out[m] = (np.full(len(graphs), self.scale_["constants"][m]) if mode == "constant"
                      else np.rint(totals[:, i]) if mode == "log1p" else totals[:, i])
        return out

    def block_costs(self, graph: GraphFeatures) -> dict[str, Any]:
        """Where one graph's cost goes: its blocks and each block's predicted cost.

        Returns ``blocks`` (operator index lists), ``costs`` (metric -> [blocks]),
        ``overhead`` (metric -> float), ``total`` (metric -> float, as ``predict`` gives
        before rounding counts) and ``peak`` (metric -> whether blocks are maxed, not
        summed). For additive metrics the block costs plus the overhead add up to the total.
        """
        self._check_fitted()
        prepared = _prepare([graph], self.feat_)
        cost, over, totals = self._aggregate(prepared)
        metrics = self.metrics_
        return {"blocks": prepared.blocks[0].split.blocks,
                "costs": {m: cost[:, i] for i, m in enumerate(metrics)},
                "overhead": {m: float(over[0, i]) for i, m in enumerate(metrics)},
                "total": {m: float(totals[0, i]) for i, m in enumerate(metrics)},
                "peak": {m: is_peak(m) for m in metrics}}

    # -- saving ----------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        tensors = dict(self.tensors_)
        tensors.update({f"feat.{k}": np.asarray(v) for k, v in self.feat_.items()})
        return tensors, {"scale": self.scale_, "block_features": list(BLOCK_FEATURES),
                         "global_features": list(GLOBAL_FEATURES),
                         "overhead_globals": list(OVERHEAD_GLOBALS)}

    def _restore(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        if (state.get("block_features") != list(BLOCK_FEATURES)
                or state.get("overhead_globals") != list(OVERHEAD_GLOBALS)):
            raise WeightsError("block predictor saved with other block features than this "
                               "PerfSAGE computes; retrain")
        self.scale_ = state["scale"]
        self.feat_ = {k[5:]: v for k, v in tensors.items() if k.startswith("feat.")}
        self.tensors_ = {k: v for k, v in tensors.items() if not k.startswith("feat.")}
