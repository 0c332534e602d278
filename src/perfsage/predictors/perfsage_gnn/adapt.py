"""Few-sample refits of a PerfSAGE network's readout: the moves ``predictors.adapt`` chooses from.

A user's board comes with tens of measurements, not tens of thousands, so the network's
encoder (operator embeddings, message passing, the pooled head's first layers) stays frozen
and only the readout's last, per-metric parts move. What is kept is the network's
per-operator cost structure: an additive metric (latency, energy) stays a sum of operator
costs ``r_k * exp(d_ik) * b_ik`` over the cost basis (MACs, bytes, ...) plus an overhead.
The moves, cheapest first:

* ``scale``: one factor per metric, closed form (the mean log ratio). The base network's
  ranking of models is kept exactly; only its level moves.
* ``compute``: the per-operator corrections ``d_ik`` set to 0, the rates of MACs and
  activation bytes fitted by non-negative least squares on relative error; nothing per
  call, per weight byte or per network. The plainest physics, and the most robust.
* ``runtime``: as ``compute``, with two of a CPU's known contrasts at rates of their own,
  held as those types' per-operator corrections (``priced_apart``): depthwise
  convolutions' MACs, and the activation bytes of the operator types a CPU runtime leaves
  to its plain kernels (``targets.xnnpack.UNDELEGATED_INT8``, and types PerfSAGE does not
  know). On LiteRT they cost 2-30 times the common rate; cross-validation tells whether
  a board behaves so. Only where the per-operator head sees operator types one-hot (the
  ``types`` start), whose last layer then holds the rates.
* ``linear``: as ``compute`` with every rate of the cost basis and the overhead's.
* ``rates``: after ``scale``, the network-wide rates (and the overhead's) fitted by Adam,
  ridge-pulled toward where they started.
* ``head``: as ``rates``, plus the last layer of the per-operator correction (``node_head``'s,
  or ``peak_head``'s for peak memory) and the metric's row of the pooled head, all
  ridge-pulled toward the base's values.
* ``compute+head``, ``runtime+head``, ``linear+head``: that move, then ``head``'s refit.

Each move touches only the rows of its own metric, so metrics are fitted one by one on one
network. Adam's state is recorded at several step counts, so cross-validation can pick the
ridge weight and where to stop. Training only: this imports torch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfsage.errors import UsageError
from perfsage.predictors.graphset import GraphSet
from perfsage.predictors.outputs import ADDITIVE_METRICS, PEAK_METRICS, output_scaling
from perfsage.predictors.perfsage_gnn.config import parse_spec
from perfsage.predictors.perfsage_gnn.spec import basis_names

#: The moves, simplest first: cross-validation prefers the simplest whose error is within
#: one standard error of the best.
MOVES = ("scale", "compute", "runtime", "linear", "rates", "head", "compute+head",
         "runtime+head", "linear+head")
#: Moves refitted by Adam, whose ridge weight and step count cross-validation chooses.
ITERATIVE = ("rates", "head", "compute+head", "runtime+head", "linear+head")
#: The cost quantities of ``compute``: work and activation traffic (and, where the network
#: has them, the roofline's cycles), without a per-call, per-weight-byte or per-network
#: constant. Those three are what a few large models fit worst and extrapolate worst: to a
#: model of 10 tiny layers, or one of 800 cheap ones.
COMPUTE = ("macs", "activation_bytes", "roofline_cycles")
#: Config fields ``weights.save`` writes itself: dropped from a base config before reuse.
_DERIVED = ("format", "spec_version", "feature_version", "op_types", "tensors",
            "weights_sha256", "spec_sha256")
#: The fewest training graphs in which a per-operator input must be active to be refitted.
MIN_SUPPORT = 3
#: How a network fitted from nothing sees operators (``from_nothing``).
ENCODERS = ("types", "random")
#: Adam's step size on the refitted rows (log rates and layer weights alike).
LEARNING_RATE = 0.02
#: A peak metric's pooled floor where none is learnt: far below any real figure (log KiB).
_NO_FLOOR_LOG = -20.0


def readout_of(spec, metric: str) -> str:
    """How ``spec``'s network gives ``metric``: additive, peak, pooled or constant."""
    if spec.modes[metric] == "constant":
        return "constant"
    if metric in spec.additive:
        return "additive"
    if metric in spec.peak:
        return "peak"
    return "pooled"


def moves_for(spec, metric: str, *, from_nothing: bool) -> tuple[str, ...]:
    """The moves that apply to ``metric`` of ``spec``'s network.

    From nothing there is no base to scale: additive metrics start from ``compute`` or
    ``linear``, the others from their fresh rows (``scale`` fits their level).
    """
    kind = readout_of(spec, metric)
    if kind == "constant":
        return ()
    if kind == "additive":
        if spec.rate_init is None:
            return ("scale", "head")
        # From nothing the rates start where no fold may see: every fit begins with NNLS.
        moves = tuple(m for m in MOVES if m.startswith(("compute", "runtime", "linear"))) \
            if from_nothing else MOVES
        return moves if sees_types(spec) else tuple(m for m in moves
                                                    if not m.startswith("runtime"))
    return ("scale", "head")


def sees_types(spec) -> bool:
    """Whether ``spec``'s per-operator heads see operator types one-hot and nothing else.

    That is ``from_nothing``'s ``types`` encoder: a per-type rate is then one weight.
    """
    from perfsage.predictors.features import OP_TYPES

    return spec.layers == 0 and spec.embed == len(OP_TYPES) + 1


def priced_apart() -> tuple[tuple[str, list[int]], ...]:
    """What ``runtime`` prices apart: (cost quantity, operator type indices) pairs.

    Depthwise convolutions' MACs: a CPU's depthwise kernels reuse little of what they load
    and use its vector units worse than a dense convolution does (fitted over the real
    models of ``benchmarks/keras_zoo.py``: per MAC 10 times dearer on an AVX-512 CPU, 2.4
    times on an AVX2 one). The activation bytes of the types LiteRT's XNNPACK leaves to
    LiteRT's own kernels (20-30 times a delegated byte on both), and of types PerfSAGE
    does not know (``features.OP_TYPES`` indices, unknown last).
    """
    from perfsage.predictors.features import OP_TYPES, UNKNOWN_TYPE
    from perfsage.targets.xnnpack import UNDELEGATED_INT8

    plain = sorted(OP_TYPES.index(t) for t in UNDELEGATED_INT8) + [UNKNOWN_TYPE]
    return (("macs", [OP_TYPES.index("DEPTHWISE_CONV_2D")]), ("activation_bytes", plain))


# -- starting networks -----------------------------------------------------------------


def _kind(metric: str, mode: str, base) -> str:
    """The readout a metric gets on a network adapted from ``base``."""
    if mode == "constant":
        return "constant"
    if mode == "log" and metric in ADDITIVE_METRICS and base.additive:
        return "additive"
    if mode == "log" and metric in PEAK_METRICS and base.peak:
        return "peak"
    return "pooled"


def _source(metric: str, kind: str, mode: str, base) -> str | None:
    """The base metric whose rows a new metric starts from (None: fresh rows)."""
    if kind == "additive":
        return metric if metric in base.additive else (
            "latency_ms" if "latency_ms" in base.additive else base.additive[0])
    if kind == "peak":
        return metric if metric in base.peak else base.peak[0]
    if kind == "pooled" and metric in base.metrics and base.modes[metric] == mode \
            and metric not in base.additive and metric not in base.peak:
        return metric
    return None


@dataclass(frozen=True)
class Start:
    """A network to adapt: its spec (a config draft, not yet sealed) and its tensors.

    ``sources``: per metric, the base metric its rows came from (None: fresh rows).
    """

    draft: dict[str, Any]
    tensors: dict[str, np.ndarray]
    sources: dict[str, str | None]
    from_nothing: bool


def from_base(config: dict[str, Any], tensors: dict[str, np.ndarray],
              labels: dict[str, np.ndarray], name: str) -> Start:
    """The base network re-headed for the user's metrics, before any refit.

    Every metric the base also predicts starts from its own rows; another additive metric
    from the base's latency rows, another peak metric from its peak rows, anything else
    from fresh rows (its level is fitted by ``scale``). The encoder, the standardisation of
    inputs, the constants and the training domain stay the base's: the frozen layers still
    read what they were trained on.
    """
    base = parse_spec(config, source=f"the base weights of {name}")
    scale = output_scaling(labels)
    metrics = scale["metrics"]
    modes = scale["modes"]
    kinds = {m: _kind(m, modes[m], base) for m in metrics}
    sources = {m: _source(m, kinds[m], modes[m], base) for m in metrics}
    additive = [m for m in metrics if kinds[m] == "additive"]
    peak = [m for m in metrics if kinds[m] == "peak"]
    mu, sigma = [], []
    for i, m in enumerate(metrics):
        src = sources[m]
        j = base.metrics.index(src) if src is not None else None
        mu.append(base.mu[j] if j is not None else scale["mu"][i])
        sigma.append(base.sigma[j] if j is not None else scale["sigma"][i])
    out = dict(tensors)
    head_w = np.zeros((len(metrics), tensors["head.4.weight"].shape[1]), dtype=np.float32)
    head_b = np.zeros(len(metrics), dtype=np.float32)
    for i, m in enumerate(metrics):
        if sources[m] is not None:
            j = base.metrics.index(sources[m])
            head_w[i], head_b[i] = tensors["head.4.weight"][j], tensors["head.4.bias"][j]
        elif kinds[m] == "peak":  # no pooled floor to start from: none
            head_b[i] = (_NO_FLOOR_LOG - mu[i]) / sigma[i]
    out["head.4.weight"], out["head.4.bias"] = head_w, head_b
    for name_ in [k for k in out if k.startswith(("node_head.", "peak_head.", "rate_log"))]:
        del out[name_]
    rate_init = None
    if additive:
        src = [base.additive.index(sources[m]) for m in additive]
        if base.rate_init is not None:
            rates = tensors["rate_log"][:, src]
            k = len(rates) - 1
            rows = [kk * len(base.additive) + s for kk in range(k) for s in src]
            rate_init = rates.astype(np.float64).tolist()
            out["rate_log"] = np.ascontiguousarray(rates, dtype=np.float32)
        else:
            rows = src
        out["node_head.0.weight"] = tensors["node_head.0.weight"]
        out["node_head.0.bias"] = tensors["node_head.0.bias"]
        out["node_head.2.weight"] = np.ascontiguousarray(tensors["node_head.2.weight"][rows])
        out["node_head.2.bias"] = np.ascontiguousarray(tensors["node_head.2.bias"][rows])
    if peak:
        rows = [base.peak.index(sources[m]) for m in peak]
        out["peak_head.0.weight"] = tensors["peak_head.0.weight"]
        out["peak_head.0.bias"] = tensors["peak_head.0.bias"]
        out["peak_head.2.weight"] = np.ascontiguousarray(tensors["peak_head.2.weight"][rows])
        out["peak_head.2.bias"] = np.ascontiguousarray(tensors["peak_head.2.bias"][rows])
    draft = {k: v for k, v in config.items() if k not in _DERIVED}
    draft.update(target=name, metrics=metrics, modes=modes, mu=mu, sigma=sigma,
                 constants=scale["constants"], additive=additive, peak=peak,
                 rate_init=rate_init)
    return Start(draft, out, sources, from_nothing=False)


def from_nothing(data: GraphSet, name: str, *, seed: int = 0, encoder: str = "types") -> Start:
    """A fresh network for ``data``'s metrics whose readout starts at the physics baseline.

    The spec is the one ``perfsage train`` would write for these rows (scaling, inputs,
    domain). Per-operator corrections and pooled rows start at 0: an additive metric is
    then MACs, bytes and operators at network-wide rates, a peak metric the largest live
    activation bytes. The frozen encoder gives the per-operator heads their features:

    * ``types``: no message passing, and each operator's state is the one-hot of its type
      (the embedding and the first layers are identities). The last layer of the
      per-operator head then holds one log-rate correction per operator type and cost
      quantity: ``head`` fits a rate per MAC, per byte and per call for each type, pulled
      toward the shared rate by the ridge. Where hardware is unknown, what an operator
      type costs per MAC is the first thing to learn.
    * ``random``: two rounds of message passing with random (seeded) weights: random but
      type-, shape- and neighbour-aware operator features.
    """
    from dataclasses import fields

    import torch

    from perfsage.predictors.features import OP_TYPES
    from perfsage.predictors.perfsage_gnn.net import PerfSAGENet
    from perfsage.predictors.perfsage_gnn.train import Hyper, _spec
    from perfsage.targets.registry import target_names

    if encoder not in ENCODERS:
        raise UsageError(f"encoder {encoder!r}: choose from {', '.join(ENCODERS)}")
    types = len(OP_TYPES) + 1  # and "unknown"
    # Hardware-aware inputs need hardware PerfSAGE knows: none for a board named by the user.
    known = {"roofline": False} if name not in target_names() and "roofline" in {
        f.name for f in fields(Hyper)} else {}
    shape = {"hidden": 64, "layers": 0, "embed": types} if encoder == "types" else \
        {"hidden": 64, "layers": 2, "embed": 16}
    hyper = Hyper(**shape, type_dropout=0.0, seed=seed, **known)
    draft = _spec(data, data, name, hyper, None)
    spec = parse_spec(draft, source=f"the spec of {name}")
    torch.manual_seed(seed)
    net = PerfSAGENet.from_spec(spec)
    tensors = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    if encoder == "types":  # operator state = one-hot type, passed through unchanged
        tensors["embed.weight"] = np.eye(types, dtype=np.float32)
        tensors["lin_in.weight"][:] = 0
        tensors["lin_in.weight"][:types, :types] = np.eye(types, dtype=np.float32)
        tensors["lin_in.bias"][:] = 0
        for head in ("node_head", "peak_head"):
            if f"{head}.0.weight" in tensors:
                tensors[f"{head}.0.weight"] = np.eye(shape["hidden"], dtype=np.float32)
                tensors[f"{head}.0.bias"][:] = 0
    tensors["head.4.weight"][:] = 0
    tensors["head.4.bias"][:] = 0
    for i, m in enumerate(spec.metrics):
        if m in spec.peak:
            tensors["head.4.bias"][i] = (_NO_FLOOR_LOG - spec.mu[i]) / spec.sigma[i]
    for key in ("node_head.2.weight", "node_head.2.bias", "peak_head.2.weight",
                "peak_head.2.bias"):
        if key in tensors:
            tensors[key][:] = 0
    return Start(draft, tensors, dict.fromkeys(spec.metrics), from_nothing=True)


# -- the frozen encoder's outputs ------------------------------------------------------


#: The per-operator heads whose first layer stays frozen in every move.
_NODE_HEADS = ("node_head", "peak_head")


class Encoded:
    """Each graph's frozen encoder outputs, computed once, gathered for any subset of rows.

    Built from the network and the rows' features as training builds its inputs
    (``train._pyg``), with operator types never trained on read as unknown, as the runtime
    reads them (``runtime._type_map``): a refit sees what prediction computes. The first
    layer of each per-operator head is frozen too, so its output is kept as well
    (``first``): a refit step then costs the last layers only.
    """

    def __init__(self, net, spec, data: GraphSet) -> None:
        import torch
        from torch_geometric.data import Batch as PygBatch

        from perfsage.predictors.perfsage_gnn.runtime import _type_map
        from perfsage.predictors.perfsage_gnn.train import _pyg

        b = PygBatch.from_data_list(_pyg(data, spec))
        types = _type_map(spec)
        op_type = b.op_type if types is None else torch.from_numpy(types)[b.op_type]
        with torch.no_grad():
            h, pooled = net.encode(op_type, b.x, b.edge_index, b.glob, b.batch, b.num_graphs)
            first = {name: getattr(net, name)[0](h) for name in _NODE_HEADS
                     if hasattr(net, name)}
        ptr = b.ptr.tolist()

        def split(t):
            return None if t is None else [t[a:z] for a, z in zip(ptr[:-1], ptr[1:],
                                                                  strict=True)]

        self.h, self.pooled = split(h), pooled
        self.op_type = split(op_type)
        self.live, self.basis = split(getattr(b, "live_kib", None)), split(getattr(b, "basis",
                                                                                  None))
        #: head name -> each graph's output of the head's (frozen) first layer
        self.first = {name: split(t) for name, t in first.items()}

    def support(self, head: str, rows: Sequence[int]):
        """1 for each input of ``head``'s last layer active in ``MIN_SUPPORT`` graphs of ``rows``.

        An operator feature seen in one or two models (an operator type only they have)
        can absorb all of their residual, and a model rich in it then gets that error
        multiplied: such inputs keep their start weights. Dense features (a trained or a
        random encoder's) are active everywhere and all move.
        """
        import torch

        active = torch.stack([(self.first[head][i] > 0).any(dim=0) for i in rows])
        return (active.sum(dim=0) >= MIN_SUPPORT).float()[None, :]

    def gather(self, rows: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``readout``'s arguments and the heads' first-layer outputs, graphs at ``rows``."""
        import torch

        rows = list(rows)
        sizes = torch.tensor([len(self.h[i]) for i in rows])

        def cat(parts):
            return None if parts is None else torch.cat([parts[i] for i in rows])

        inputs = {"h": cat(self.h), "pooled": self.pooled[rows],
                  "batch": torch.repeat_interleave(torch.arange(len(rows)), sizes),
                  "num_graphs": len(rows), "live_kib": cat(self.live), "basis": cat(self.basis)}
        return inputs, {name: cat(parts) for name, parts in self.first.items()}


class _Given:
    """Stands in for a frozen layer whose output is known: returns it, whatever the input."""

    def __init__(self) -> None:
        self.value = None

    def __call__(self, _x):
        return self.value


# -- refits ----------------------------------------------------------------------------


class Refitter:
    """One network and its frozen encoder outputs; refits one metric's rows at a time.

    ``state()`` and ``restore()`` snapshot the trainable tensors, so cross-validation can
    start every fold from the same place.
    """

    def __init__(self, start: Start, data: GraphSet) -> None:
        import torch

        from perfsage.predictors.perfsage_gnn.net import PerfSAGENet

        torch.set_num_threads(1)
        self.spec = parse_spec(start.draft, source=f"the spec of {start.draft['target']}")
        self.from_nothing = start.from_nothing
        self.net = PerfSAGENet.from_spec(self.spec)
        self.net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                                  start.tensors.items()})
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.encoded = Encoded(self.net, self.spec, data)
        self.labels = data.labels
        # The heads' frozen first layers give what Encoded kept: a step skips them.
        self._given = {name: _Given() for name in self.encoded.first}
        for name, given in self._given.items():
            head = getattr(self.net, name)
            head[0].forward = given

    def _readout(self, inputs: tuple[dict[str, Any], dict[str, Any]]):
        """``net.readout`` on :meth:`Encoded.gather`'s result."""
        arguments, first = inputs
        for name, value in first.items():
            self._given[name].value = value
        return self.net.readout(**arguments)

    def state(self) -> dict[str, Any]:
        """A copy of every tensor of the network."""
        return copy.deepcopy(self.net.state_dict())

    def restore(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state`."""
        self.net.load_state_dict(state)

    def tensors(self) -> dict[str, np.ndarray]:
        """The network's tensors, as a weights folder holds them."""
        return {k: v.detach().numpy().copy() for k, v in self.net.state_dict().items()}

    # -- what a metric's figure is, and its training target --------------------------

    def _target(self, metric: str, rows: Sequence[int]):
        """The metric's labels in the space the loss compares (log, or log1p for counts)."""
        import torch

        y = np.asarray(self.labels[metric], dtype=np.float64)[list(rows)]
        t = np.log(np.maximum(y, 1e-30)) if self.spec.modes[metric] == "log" else np.log1p(y)
        return torch.tensor(t, dtype=torch.float32)

    def _space(self, metric: str, inputs: dict[str, Any]):
        """The network's figure for ``metric`` in the loss's space (log or log1p)."""
        i = self.spec.metrics.index(metric)
        out = self._readout(inputs)
        return out[:, i] * self.spec.sigma[i] + self.spec.mu[i]

    def predict(self, metric: str, rows: Sequence[int]) -> np.ndarray:
        """The metric's figures for the graphs at ``rows``, in its unit."""
        import torch

        if self.spec.modes[metric] == "constant":
            return np.full(len(rows), self.spec.constants[metric])
        with torch.no_grad():
            t = self._space(metric, self.encoded.gather(rows)).double().numpy()
        return np.exp(t) if self.spec.modes[metric] == "log" else np.maximum(np.expm1(t), 0)

    # -- the moves ---------------------------------------------------------------------

    def _rows(self, metric: str, move: str) -> dict[str, Any]:
        """Parameter name -> mask of the entries ``move`` refits for ``metric``."""
        import torch

        params = dict(self.net.named_parameters())
        kind, i = readout_of(self.spec, metric), self.spec.metrics.index(metric)

        def mask(name: str, index, axis: int = 0):
            m = torch.zeros_like(params[name])
            if axis == 0:
                m[index] = 1
            else:
                m[:, index] = 1
            return m

        out = {}
        if kind == "additive" and "rate_log" in params:
            out["rate_log"] = mask("rate_log", self.spec.additive.index(metric), axis=1)
        if move in ("head", "linear+head"):
            # From nothing, the pooled head sees random features: an additive metric's
            # overhead stays its rate alone rather than learn a spurious dependence on them.
            if not (self.from_nothing and kind == "additive"):
                out["head.4.weight"], out["head.4.bias"] = mask("head.4.weight", i), \
                    mask("head.4.bias", i)
            if kind == "additive":
                a, n_add = self.spec.additive.index(metric), len(self.spec.additive)
                width = params["node_head.2.weight"].shape[0]
                rows = list(range(a, width, n_add))
                out["node_head.2.weight"] = mask("node_head.2.weight", rows)
                out["node_head.2.bias"] = mask("node_head.2.bias", rows)
            elif kind == "peak":
                p = self.spec.peak.index(metric)
                out["peak_head.2.weight"] = mask("peak_head.2.weight", p)
                out["peak_head.2.bias"] = mask("peak_head.2.bias", p)
        return out

    def shift(self, metric: str, rows: Sequence[int]) -> float:
        """``scale``: move the metric's level by its mean log ratio on ``rows``; the shift."""
        import torch

        with torch.no_grad():
            gap = float((self._target(metric, rows)
                         - self._space(metric, self.encoded.gather(rows))).mean())
        params = dict(self.net.named_parameters())
        kind, i = readout_of(self.spec, metric), self.spec.metrics.index(metric)
        with torch.no_grad():
            if kind == "additive" and "rate_log" in params:
                params["rate_log"][:, self.spec.additive.index(metric)] += gap
            elif kind == "additive":  # no rates: every operator's cost and the overhead
                a, n_add = self.spec.additive.index(metric), len(self.spec.additive)
                params["node_head.2.bias"][a::n_add] += gap
                params["head.4.bias"][i] += gap / self.spec.sigma[i]
            elif kind == "peak":
                params["peak_head.2.bias"][self.spec.peak.index(metric)] += gap
                params["head.4.bias"][i] += gap / self.spec.sigma[i]
            else:
                params["head.4.bias"][i] += gap / self.spec.sigma[i]
        return gap

    def linear(self, metric: str, rows: Sequence[int],
               only: tuple[str, ...] | None = None, apart: bool = False) -> None:
        """``linear``: per-operator corrections to 0, rates by NNLS on relative error.

        The metric's total is then ``sum_k r_k * sum_i b_ik + r_overhead``; the rates
        minimise ``sum ((total - y) / y)^2`` with every rate at 0 or more. A rate the fit
        zeroes, or one left out of ``only`` (names of ``spec.basis_names`` and
        ``"overhead"``), is kept at 1/1000 of what alone would explain the labels.

        ``apart`` (``runtime``): each of ``priced_apart``'s quantities gets a rate of its
        own on its types, set as those types' correction to the shared rate (within the
        network's bound); where fewer than ``MIN_SUPPORT`` rows have such an operator they
        keep the shared rate.
        """
        import torch
        from scipy.optimize import nnls

        params = dict(self.net.named_parameters())
        masks = self._rows(metric, "linear+head")
        i = self.spec.metrics.index(metric)
        with torch.no_grad():
            for name in ("node_head.2.weight", "node_head.2.bias"):
                params[name][masks[name].bool()] = 0
            params["head.4.weight"][i] = 0  # the overhead: its rate alone
            params["head.4.bias"][i] = 0
        names = (*basis_names(self.spec.groups), "overhead")
        design = self._design(rows, apart)
        y = np.asarray(self.labels[metric], dtype=np.float64)[list(rows)]
        keep = np.ones(design.shape[1], dtype=bool)
        if only is not None:  # the other rates (and the overhead's) stay at their floor
            keep[:len(names)] = [n in only for n in names]
        # A quantity priced apart needs MIN_SUPPORT rows that have it, as ``head``'s inputs;
        # else it goes back to the shared column.
        apart_columns = list(enumerate(priced_apart() if apart else (), start=len(names)))
        for column, (quantity, _) in apart_columns:
            if (design[:, column] > 0).sum() < MIN_SUPPORT:
                keep[column] = False
                design[:, names.index(quantity)] += design[:, column]
                design[:, column] = 0.0
        coef = np.zeros(design.shape[1])
        coef[keep], _ = nnls(design[:, keep] / y[:, None], np.ones(len(y)))
        # Over the rows that have the quantity: a column priced apart is 0 in many.
        floor = 1e-3 * np.array([np.median(y[c > 0] / c[c > 0]) if c.any() else 1.0
                                 for c in design.T])
        rates = np.log(np.maximum(coef, floor))
        a = self.spec.additive.index(metric)
        with torch.no_grad():
            params["rate_log"][:, a] = torch.tensor(rates[:len(names)], dtype=torch.float32)
            for column, (quantity, types) in apart_columns:
                if not keep[column]:
                    continue
                k, rb = names.index(quantity), self.net.rate_bound
                gap = np.clip(rates[column] - rates[k], -0.98 * rb, 0.98 * rb)
                row = k * len(self.spec.additive) + a
                params["node_head.2.weight"][row, types] = float(rb * np.arctanh(gap / rb))

    def _design(self, rows: Sequence[int], apart: bool) -> np.ndarray:
        """Per graph, each cost quantity summed over its operators, then a 1 (the overhead).

        ``apart``: each of ``priced_apart``'s quantities summed over its types in a column
        of its own (after the overhead's), and left out of the shared column.
        """
        import torch

        names = basis_names(self.spec.groups)
        split = [(names.index(q), torch.tensor(t)) for q, t in priced_apart()] if apart else []
        out = []
        for r in rows:
            b = torch.exp(self.encoded.basis[r].double())
            row = [*b.sum(dim=0).tolist(), 1.0]
            for k, types in split:
                apart_sum = float(b[torch.isin(self.encoded.op_type[r], types), k].sum())
                row[k] -= apart_sum
                row.append(apart_sum)
            out.append(row)
        return np.array(out)

    def adam(self, metric: str, move: str, rows: Sequence[int], ridge: float,
             checkpoints: Sequence[int], held: Sequence[int] = ()) -> dict[int, np.ndarray]:
        """Refit ``move``'s rows of ``metric`` on ``rows`` with Adam, ridge toward the start.

        Loss: mean squared error in log space plus ``ridge`` times the squared distance of
        the refitted entries from where they started. Returns the predictions for ``held``
        after each step count in ``checkpoints`` (the network ends at the last).
        """
        import torch

        masks = self._rows(metric, move)
        for head in self.encoded.first:
            name = f"{head}.2.weight"
            if name in masks:  # inputs too rare to tell apart from one model's residual
                masks[name] = masks[name] * self.encoded.support(head, rows)
        params = dict(self.net.named_parameters())
        start = {n: params[n].detach().clone() for n in masks}
        trained = [params[n] for n in masks]
        hooks = []
        for n in masks:
            params[n].requires_grad_(True)
            hooks.append(params[n].register_hook(lambda g, m=masks[n]: g * m))
        inputs, target = self.encoded.gather(rows), self._target(metric, rows)
        opt = torch.optim.Adam(trained, lr=LEARNING_RATE)
        found: dict[int, np.ndarray] = {}
        try:
            for step in range(1, max(checkpoints) + 1):
                opt.zero_grad()
                error = ((self._space(metric, inputs) - target) ** 2).mean()
                pull = sum((((params[n] - start[n]) * masks[n]) ** 2).sum() for n in masks)
                (error + ridge * pull).backward()
                opt.step()
                if step in checkpoints:
                    found[step] = self.predict(metric, held) if len(held) else np.zeros(0)
        finally:
            for hook in hooks:
                hook.remove()
            for p in trained:
                p.requires_grad_(False)
        return found

    def apply(self, metric: str, move: str, rows: Sequence[int], *, ridge: float = 0.0,
              checkpoints: Sequence[int] = (), held: Sequence[int] = ()) -> dict[int, np.ndarray]:
        """Refit ``metric`` on ``rows`` by ``move``; held-out predictions as :meth:`adam`.

        For a closed-form move the held-out predictions come under step 0.
        """
        if move not in MOVES:
            raise UsageError(f"unknown move {move!r}; choose from: {', '.join(MOVES)}")
        if move.startswith("linear"):
            self.linear(metric, rows)
        elif move.startswith("compute"):
            self.linear(metric, rows, only=COMPUTE)
        elif move.startswith("runtime"):
            if not sees_types(self.spec):
                raise UsageError(f"move {move!r} needs the network of the 'types' start")
            self.linear(metric, rows, only=COMPUTE, apart=True)
        elif not self.from_nothing or readout_of(self.spec, metric) != "additive":
            self.shift(metric, rows)
        if move in ITERATIVE:
            return self.adam(metric, "rates" if move == "rates" else "head", rows, ridge,
                             checkpoints, held)
        return {0: self.predict(metric, held) if len(held) else np.zeros(0)}
