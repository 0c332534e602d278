"""What a trained PerfSAGE network is, defined once for training, the network and the runtime.

A weights folder's ``config.json`` is the model spec on disk: the node columns the network
reads, by name and in order; its readouts; how outputs and inputs are scaled; the constants
its layers use; the training domain; a fingerprint of the training data. ``config`` parses
it into a :class:`ModelSpec`, and the torch network (``net``), the NumPy runtime
(``runtime``) and training (``train``) are all built from that object. Node columns come
in :class:`ColumnGroup` s, and :func:`node_inputs` is the one place a batch's node matrix is
put together, for training and prediction alike.

``spec_sha256`` is the SHA-256 of the whole config (the weights file's own SHA-256
included) less itself, so a number edited after training is caught when the weights load.
NumPy only: prediction imports this, never torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from perfsage.predictors.features import (
    ALIGNMENT_COLUMNS,
    COST_BASIS,
    LIVE_BYTES_COLUMN,
    NODE_FEATURES,
    GraphFeatures,
    channel_alignment,
    cost_basis,
    live_bytes,
)
from perfsage.predictors.roofline import ROOFLINE_COLUMNS

#: The config format this PerfSAGE reads and writes (a config without one predates specs).
SPEC_VERSION = 2

#: Sum pooling is scaled down so its magnitude stays near the mean's for ~100-op graphs.
SUM_SCALE = 1 / 16
#: log(64): per-operator costs start at 1/64 of the mean total (networks have ~30-150 ops).
NODE_SHARE_LOG = 4.1588830833596715
#: Largest log-factor by which an operator's rate may differ from the network-wide rate.
RATE_BOUND = 4.0
#: The constants as a spec records them; the network and the runtime read a spec's values.
NET_CONSTANTS = {"sum_scale": SUM_SCALE, "node_share_log": NODE_SHARE_LOG,
                 "rate_bound": RATE_BOUND}


class Batch:
    """Graphs concatenated for one pass: nodes renumbered, each graph a run of rows.

    A plain class, not a dataclass: prediction imports this module on every start.
    """

    __slots__ = ("op_types", "nodes", "edges", "starts", "sizes", "globals", "graphs", "target",
                 "_live", "_roofline")

    def __init__(self, graphs: Sequence[GraphFeatures], target: str | None = None) -> None:
        sizes = np.array([len(g.op_types) for g in graphs])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        offsets = np.repeat(starts, [g.edges.shape[1] for g in graphs])
        self.op_types = np.concatenate([g.op_types for g in graphs])  # int64 [nodes]
        #: float32 [nodes, len(NODE_FEATURES)], as featurize gives them
        self.nodes = np.concatenate([g.nodes for g in graphs])
        #: int64 [2, edges], renumbered into the batch
        self.edges = np.concatenate([g.edges for g in graphs], axis=1) + offsets
        self.starts, self.sizes = starts, sizes  # each graph's first row and operators
        self.globals = np.stack([g.globals for g in graphs])  # float32 [graphs, globals]
        self.graphs = graphs
        #: the Ethos-U target whose hardware the roofline columns describe (None: none)
        self.target = target
        self._live: np.ndarray | None = None
        self._roofline: np.ndarray | None = None

    @property
    def live(self) -> np.ndarray:
        """``features.live_bytes`` of every node (computed once: a column and a readout use it)."""
        if self._live is None:
            self._live = live_bytes(self.nodes, self.edges, self.starts, self.sizes,
                                    self.globals)
        return self._live

    @property
    def roofline(self) -> np.ndarray:
        """``roofline.node_columns`` of every node on ``target``'s hardware (computed once).

        Raises:
            ValueError: the batch has no target.
        """
        if self._roofline is None:
            if self.target is None:
                raise ValueError("roofline columns need the target whose hardware they "
                                 "describe; this batch has none")
            from perfsage.predictors.roofline import node_columns as roofline_columns
            from perfsage.targets.hardware import hardware

            hw = hardware(self.target)
            self._roofline = np.concatenate([roofline_columns(g, hw) for g in self.graphs])
        return self._roofline


class ColumnGroup(NamedTuple):
    """Node columns that come together, by name, and how a batch gives their values."""

    name: str
    columns: tuple[str, ...]
    values: Callable[[Batch], np.ndarray]  # float32 [nodes, len(columns)]


#: Every node column a network can read: what featurize gives, the bytes live at each
#: operator (``features.live_bytes``), how far its channels are from the blocks an NPU
#: computes in (``features.channel_alignment``), and what physics says the operator costs
#: on the target's hardware (``roofline.node_columns``; Ethos-U targets only).
COLUMN_GROUPS = (
    ColumnGroup("features", NODE_FEATURES, lambda b: b.nodes),
    ColumnGroup("live_bytes", (LIVE_BYTES_COLUMN,), lambda b: b.live[:, None]),
    ColumnGroup("alignment", ALIGNMENT_COLUMNS, lambda b: channel_alignment(b.nodes)),
    ColumnGroup("roofline", ROOFLINE_COLUMNS, lambda b: b.roofline),
)
#: The cost-basis quantity the roofline group adds: the operator's roofline cycles, so that
#: an additive readout's per-operator cost is a bounded correction to physics.
ROOFLINE_BASIS = "roofline_cycles"
_GROUP_OF = {g.columns[0]: g for g in COLUMN_GROUPS}


def column_groups(columns: Sequence[str]) -> tuple[ColumnGroup, ...]:
    """The groups ``columns`` is made of, in its order.

    Raises:
        ValueError: ``columns`` is empty or not a run of whole groups, each at most once;
            the message names the first column that does not fit.
    """
    if not columns:
        raise ValueError("names no column")
    groups: list[ColumnGroup] = []
    i = 0
    while i < len(columns):
        group = _GROUP_OF.get(columns[i])
        if group is None or tuple(columns[i:i + len(group.columns)]) != group.columns:
            known = ", ".join(f"{g.name} ({g.columns[0]} ... {g.columns[-1]})"
                              if len(g.columns) > 1 else g.name for g in COLUMN_GROUPS)
            raise ValueError(f"column {i} ({columns[i]!r}) does not start a whole group of "
                             f"node columns; the groups: {known}")
        if group in groups:
            raise ValueError(f"names the {group.name} columns twice")
        groups.append(group)
        i += len(group.columns)
    return tuple(groups)


def node_inputs(batch: Batch, groups: Sequence[ColumnGroup]) -> np.ndarray:
    """A batch's node matrix of the columns of ``groups``, in order (not standardised).

    The one place node inputs are put together: training, the torch network and the
    NumPy runtime all read what this returns.
    """
    if len(groups) == 1:
        return groups[0].values(batch)
    return np.column_stack([g.values(batch) for g in groups])


def basis_names(groups: Sequence[ColumnGroup]) -> tuple[str, ...]:
    """The quantities an additive readout's rates multiply, for a network of ``groups``.

    ``features.COST_BASIS`` always; the roofline's cycles where the network reads them.
    """
    has_roofline = any(g.name == "roofline" for g in groups)
    return COST_BASIS + ((ROOFLINE_BASIS,) if has_roofline else ())


def batch_basis(batch: Batch, groups: Sequence[ColumnGroup]) -> np.ndarray:
    """Log of each ``basis_names(groups)`` quantity per operator (float32 [nodes, k])."""
    basis = cost_basis(batch.nodes)
    if len(basis_names(groups)) == len(COST_BASIS):
        return basis
    op_cycles = batch.roofline[:, ROOFLINE_COLUMNS.index("log_op_cycles")]
    return np.column_stack([basis, op_cycles]).astype(np.float32)


def node_columns(*names: str) -> tuple[str, ...]:
    """The columns of the groups ``names`` (``ColumnGroup.name``), in that order."""
    by_name = {g.name: g for g in COLUMN_GROUPS}
    return tuple(c for n in names for c in by_name[n].columns)


class ModelSpec(NamedTuple):
    """A trained network's spec, checked (``config.parse_spec``): what every part reads.

    ``mu``/``sigma``/``modes``/``constants`` scale the outputs (``outputs.decode``);
    ``node_*``/``global_*`` standardise the inputs; ``additive`` and ``peak`` name the
    metrics of the two structured readouts (``net`` explains them), ``rate_init`` the
    starting cost rates of the additive one (None: no rates). Immutable; a NamedTuple
    rather than a frozen dataclass because prediction imports it on every start, and
    building a 27-field frozen dataclass class costs milliseconds.
    """

    source: str  # the config file, for messages
    target: str
    metrics: tuple[str, ...]  # output order
    modes: dict[str, str]  # metric -> "log", "log1p" or "constant"
    mu: tuple[float, ...]  # per metric, of the scaled labels
    sigma: tuple[float, ...]  # per metric, above 0
    constants: dict[str, float]  # value of each metric whose mode is "constant"
    additive: tuple[str, ...]  # metrics of the additive readout (empty: pooled)
    peak: tuple[str, ...]  # metrics of the peak readout
    rate_init: tuple[tuple[float, ...], ...] | None  # [cost basis + 1][additive]
    node_columns: tuple[str, ...]
    groups: tuple[ColumnGroup, ...]  # node_columns as groups
    roofline_target: str | None  # the Ethos-U target whose hardware roofline columns read
    node_mu: tuple[float, ...]
    node_sigma: tuple[float, ...]
    global_mu: tuple[float, ...]
    global_sigma: tuple[float, ...]
    net_constants: dict[str, float]  # NET_CONSTANTS' names -> the values trained with
    layers: int  # message-passing rounds
    hidden: int  # node state width
    embed: int  # operator type embedding width
    type_dropout: float  # > 0: operator types never trained on are read as unknown
    domain: dict[str, Any] | None  # the training domain (predictors.domain), if recorded
    data_sha256: str | None  # fingerprint of the training data (data_sha256), when known
    dataset: str | None  # the dataset trained on, as its training run named it
    holdout_space: str | None  # the search space left out of training, if one was
    sha256: str | None  # spec_sha256; None for a spec not yet written

    @property
    def scale(self) -> dict[str, Any]:
        """The output scaling in the form ``outputs.decode`` takes."""
        return {"metrics": list(self.metrics), "modes": self.modes, "mu": list(self.mu),
                "sigma": list(self.sigma), "constants": self.constants}

    def node_inputs(self, batch: Batch) -> np.ndarray:
        """The node matrix the network reads (not standardised): ``node_columns``, in order."""
        return node_inputs(batch, self.groups)

    def basis(self, batch: Batch) -> np.ndarray:
        """The log cost-basis quantities the additive readout's rates multiply."""
        return batch_basis(batch, self.groups)

    def batch(self, graphs: Sequence[GraphFeatures]) -> Batch:
        """``graphs`` as one batch for this network (its roofline on ``roofline_target``)."""
        return Batch(graphs, self.roofline_target)


def spec_sha256(config: dict[str, Any]) -> str:
    """SHA-256 of ``config`` less its ``spec_sha256``, as canonical JSON (sorted, compact)."""
    body = {k: v for k, v in config.items() if k != "spec_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its ``spec_sha256``: the last step before it is written."""
    return {**config, "spec_sha256": spec_sha256(config)}


def data_sha256(target: str, splits: dict[str, Any]) -> str:
    """Fingerprint of training data: each split's graph hashes and labels, in order.

    ``splits``: name -> a GraphSet (its ``hashes`` and ``labels``). Two trainings share
    a fingerprint when they saw the same graphs with the same labels for the same target.
    """
    d = hashlib.sha256(target.encode())
    for name, data in sorted(splits.items()):
        d.update(f"|{name}|".encode())
        d.update("\n".join(map(str, data.hashes)).encode())
        for metric in sorted(data.labels):
            d.update(f"|{metric}|".encode())
            d.update(np.ascontiguousarray(data.labels[metric], dtype=np.float64).tobytes())
    return d.hexdigest()
