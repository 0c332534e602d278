"""Calibrated prediction intervals for every metric, wider where a graph is unlike training.

A figure alone cannot tell a user whether to trust it: the shipped weights miss their own
test split by under 1 % and real architectures by tens of percent. The interval here is
split conformal prediction (Vovk et al., *Algorithmic Learning in a Random World*, 2005;
Lei et al., JASA 2018) in log space, calibrated on graphs the weights never trained on,
drawn from several populations ("groups": the task-space test split, random graphs, a zoo
of real architectures).

* Residuals are ``r = log(measured / predicted)`` (``log1p`` of both for counts that can be
  0), so intervals are multiplicative: ``[pred * exp(-q_lo), pred * exp(q_hi)]``. Each tail
  is calibrated on its own and the interval then takes the wider of the two on both sides:
  the weights' bias on calibration families (the zoo's, say, mostly under) does not carry
  to a new family, whose bias can go either way (real MobileNets on ethos-u55-128 are
  over-predicted by 5-7 % where every calibration bin's lower tail was 2-5 %).
* A difficulty score from the graph's features alone (how far its global features lie
  outside the training range; the share of its work in operators of types rarely or never
  trained on, at bit widths never trained on, or with features outside their type's
  training range; channel counts off the NPU's blocks, branching, CPU fallback notes,
  size) is a ridge fit of
  ``log |r|`` on the calibration graphs, its weights on the out-of-domain features kept
  non-negative. Graphs are binned by it (Mondrian conformal regression, Boström &
  Johansson, COPA 2020) and each bin gets its own quantiles.
* A user's graph comes from an unknown population, so each bin's quantile is the widest
  over the groups present in it, each group's at the finite-sample level
  ``ceil((n + 1) * tau) / n`` for the tail level ``tau = (1 + level) / 2``; a group with too
  few graphs in a bin borrows the neighbouring bins (a wider bin). A harder bin is never
  narrower than an easier one, so a graph further outside the training domain gets a
  wider interval, and a graph further out than every calibration graph gets the widest.
* Real models come from architecture families no calibration graph belongs to. With the
  zoo's families as clusters, each family is left out in turn and the excess of its
  misses over the tails it would have got is added to the bins the zoo is present in
  (:func:`_inflation`), so a new family is covered as the left-out ones were.

Quantiles are stored for the levels in :data:`LEVELS`; another level uses the next one up
(never narrower than asked). ``benchmarks/calibrate_intervals.py`` writes
``intervals.json`` beside each shipped weights folder; prediction reads it with NumPy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import UsageError, WeightsError
from perfsage.predictors.features import (
    GLOBAL_FEATURES,
    NODE_FEATURES,
    OP_TYPES,
    GraphFeatures,
    channel_alignment,
)

FILE_NAME = "intervals.json"
FORMAT = "perfsage-intervals"
VERSION = 1
DEFAULT_LEVEL = 0.9
#: Interval levels calibrated: 0.50, 0.51, ..., 0.99.
LEVELS = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))

#: Kinds of prediction notes (``perfsage.targets.vela_support.model_notes``) the difficulty
#: score reads.
NOTE_KINDS = ("float32", "hybrid", "custom-ops", "vela-rejects", "mostly-cpu", "cpu-ops")
_CPU_KINDS = frozenset({"custom-ops", "vela-rejects", "mostly-cpu", "cpu-ops"})
_MOSTLY_CPU_KINDS = frozenset({"vela-rejects", "mostly-cpu"})

#: Difficulty features, one column each (see :func:`difficulty_features`).
DIFFICULTY_FEATURES = (
    "outside", "beyond_range", "unseen_types", "rare_types", "other_bits", "node_outliers",
    "cpu_note", "mostly_cpu_note", "misaligned", "branching", "log_macs", "log_params",
    "log_operators", "log_peak_bytes",
    *(f"share_{name.lower()}" for name in (*OP_TYPES, "unknown")),
)
#: Features that describe distance from the training data: their score weights are kept
#: non-negative, so moving further out never narrows an interval.
WIDENING = frozenset(DIFFICULTY_FEATURES[:8])
_WIDENING_COLUMNS = np.array([i for i, f in enumerate(DIFFICULTY_FEATURES) if f in WIDENING])

#: Operator types with at least this share of the training operators are common.
COMMON_SHARE = 0.01
#: Share of a graph's work below which what its operators have never been trained on counts
#: as nothing: operators carrying less cannot move its cost by more than that (a PACK of
#: four shape integers the converter emits before a classifier's reshape, say).
MATERIAL_SHARE = 0.005
#: Bins of the difficulty score (Mondrian categories).
BINS = 10
#: A group is represented in a bin from this many calibration graphs on.
MIN_PRESENCE = 10
#: Calibration graphs a metric needs at the least.
MIN_GRAPHS = 50
#: Clusters needed to estimate how much wider a new cluster's interval must be.
MIN_CLUSTERS = 4
#: |r| floor in the score's regression target (0.1 %): below it residuals are all alike.
_ABS_FLOOR = 1e-3
_RIDGE = 1.0
_SIZES = [GLOBAL_FEATURES.index(k) for k in ("macs", "params", "operators",
                                             "peak_activation_bytes")]
_BITS = [NODE_FEATURES.index(k) for k in ("in_bits", "out_bits")]
_WORK = [NODE_FEATURES.index(k) for k in ("macs", "input_bytes", "output_bytes", "param_bytes")]
_NAMES = (*OP_TYPES, "unknown")


# -- what a graph is compared with ------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """The training data as the difficulty features see it.

    ``global_min``/``global_max`` and ``op_types``/``bits`` are the weights' recorded
    training domain (``config["domain"]``); ``type_share`` (each operator type's share of
    the training operators) and ``type_lo``/``type_hi`` (each node feature's range per
    operator type: an ADD with a constant operand is new even where convolutions have
    weights) come from a sample of the training split. Types absent from it have an empty
    range (lo > hi), so each of their operators lies outside.
    """

    global_min: np.ndarray
    global_max: np.ndarray
    op_types: tuple[str, ...]
    bits: tuple[int, ...]
    type_share: np.ndarray  # [len(OP_TYPES) + 1]
    type_lo: np.ndarray  # [len(OP_TYPES) + 1, len(NODE_FEATURES)]
    type_hi: np.ndarray

    @classmethod
    def from_training(cls, graphs: Sequence[GraphFeatures],
                      domain: Mapping[str, Any]) -> Reference:
        """From a sample of training graphs and the weights' recorded domain."""
        types = np.concatenate([g.op_types for g in graphs])
        nodes = np.concatenate([g.nodes for g in graphs]).astype(np.float64)
        share = np.bincount(types, minlength=len(_NAMES)) / max(len(types), 1)
        lo = np.full((len(_NAMES), len(NODE_FEATURES)), np.inf)
        hi = np.full((len(_NAMES), len(NODE_FEATURES)), -np.inf)
        np.minimum.at(lo, types, nodes)
        np.maximum.at(hi, types, nodes)
        return cls(np.asarray(domain["global_min"], dtype=np.float64),
                   np.asarray(domain["global_max"], dtype=np.float64),
                   tuple(domain["op_types"]), tuple(int(b) for b in domain["bits"]),
                   share, lo, hi)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (types absent from training left out)."""
        seen = [i for i in range(len(_NAMES)) if self.type_share[i] > 0]
        return {"global_min": _round(self.global_min), "global_max": _round(self.global_max),
                "op_types": list(self.op_types), "bits": list(self.bits),
                "types": {_NAMES[i]: {"share": float(f"{self.type_share[i]:.4g}"),
                                      "lo": _round(self.type_lo[i]),
                                      "hi": _round(self.type_hi[i])} for i in seen}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reference:
        """Inverse of :meth:`as_dict`."""
        k = len(NODE_FEATURES)
        share = np.zeros(len(_NAMES))
        lo, hi = np.full((len(_NAMES), k), np.inf), np.full((len(_NAMES), k), -np.inf)
        for name, t in d["types"].items():
            i = _NAMES.index(name)
            share[i], lo[i], hi[i] = float(t["share"]), _array(t["lo"], k), _array(t["hi"], k)
        return cls(_array(d["global_min"], len(GLOBAL_FEATURES)),
                   _array(d["global_max"], len(GLOBAL_FEATURES)),
                   tuple(str(t) for t in d["op_types"]), tuple(int(b) for b in d["bits"]),
                   share, lo, hi)


def _note_flags(notes: Sequence[Iterable[Any]] | None, n: int) -> np.ndarray:
    """[n, 2]: any CPU-fallback note, a mostly-CPU or rejected note (kinds, dicts or Notes)."""
    flags = np.zeros((n, 2))
    if notes is None:
        return flags
    if len(notes) != n:
        raise UsageError(f"notes: got {len(notes)} lists for {n} graphs; give one list of "
                         "notes per graph (or none)")
    for i, graph_notes in enumerate(notes):
        kinds = {_kind(note) for note in graph_notes}
        flags[i] = (bool(kinds & _CPU_KINDS), bool(kinds & _MOSTLY_CPU_KINDS))
    return flags


def _kind(note: Any) -> str:
    if isinstance(note, str):
        return note
    if isinstance(note, Mapping):
        return str(note.get("kind", ""))
    return str(getattr(note, "kind", ""))


def difficulty_features(graphs: Sequence[GraphFeatures], reference: Reference,
                        notes: Sequence[Iterable[Any]] | None = None) -> np.ndarray:
    """:data:`DIFFICULTY_FEATURES` of each graph, float64 [graphs, features], vectorised.

    Args:
        graphs: featurised graphs.
        reference: the training data to compare with.
        notes: per graph, its prediction notes (kinds as strings, dicts with ``kind`` or
            objects with a ``kind`` attribute); the CPU-fallback kinds count.

    What the graph's operators have never been trained on (unseen and rare types, other
    bit widths, features outside their type's training range) counts as a share of the
    graph's work (each operator's MACs, bytes in and out and parameter bytes), not of its
    operators: an unseen operator that moves a few shape integers says nothing about the
    figure, an unseen one that holds half the work says most. Shares under
    :data:`MATERIAL_SHARE` count as 0.
    """
    n = len(graphs)
    out = np.zeros((n, len(DIFFICULTY_FEATURES)))
    if n == 0:
        return out
    sizes = np.array([len(g.op_types) for g in graphs])
    owner = np.repeat(np.arange(n), sizes)
    types = np.concatenate([g.op_types for g in graphs])
    nodes = np.concatenate([g.nodes for g in graphs]).astype(np.float64)
    glob = np.stack([g.globals for g in graphs]).astype(np.float64)
    count = np.maximum(sizes, 1)

    def share(per_node: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=per_node.astype(np.float64), minlength=n) / count

    work = np.expm1(nodes[:, _WORK]).sum(axis=1) + 1.0
    graph_work = np.maximum(np.bincount(owner, weights=work, minlength=n), 1.0)

    def material(per_node: np.ndarray) -> np.ndarray:
        """Work-weighted share of the graph (0 below :data:`MATERIAL_SHARE`)."""
        found = np.bincount(owner, weights=work * per_node, minlength=n) / graph_work
        return np.where(found >= MATERIAL_SHARE, found, 0.0)

    span = np.maximum(reference.global_max - reference.global_min, 1e-6)
    beyond = (np.maximum(reference.global_min - glob, 0)
              + np.maximum(glob - reference.global_max, 0)) / span
    seen = np.array([name in reference.op_types for name in _NAMES])
    rarity = np.clip(np.log10(COMMON_SHARE / np.maximum(reference.type_share, 1e-6)), 0, 4)
    bits = np.rint(nodes[:, _BITS] * 32)
    other_bits = ((bits != 0) & ~np.isin(bits, reference.bits)).any(axis=1)
    # Rounding of float32 features: a value equal to a training one is inside.
    tol = 1e-4 * np.maximum(np.abs(nodes), 1.0)
    outliers = ((nodes < reference.type_lo[types] - tol)
                | (nodes > reference.type_hi[types] + tol)).any(axis=1)
    misaligned = (channel_alignment(nodes)[:, :2] > 1e-6).any(axis=1)
    edges = np.array([g.edges.shape[1] for g in graphs])
    col = {name: i for i, name in enumerate(DIFFICULTY_FEATURES)}
    out[:, col["beyond_range"]] = beyond.sum(axis=1)
    out[:, col["unseen_types"]] = material(~seen[types])
    out[:, col["rare_types"]] = material(rarity[types])
    out[:, col["other_bits"]] = material(other_bits)
    out[:, col["outside"]] = ((out[:, col["beyond_range"]] > 0) | (out[:, col["unseen_types"]] > 0)
                              | (out[:, col["other_bits"]] > 0))
    out[:, col["node_outliers"]] = material(outliers)
    out[:, [col["cpu_note"], col["mostly_cpu_note"]]] = _note_flags(notes, n)
    out[:, col["misaligned"]] = share(misaligned)
    out[:, col["branching"]] = edges / count
    out[:, [col["log_macs"], col["log_params"], col["log_operators"],
            col["log_peak_bytes"]]] = glob[:, _SIZES]
    # The operator mix: which kind of network this is.
    first = col["share_" + _NAMES[0].lower()]
    np.add.at(out, (owner, first + types), 1.0)
    out[:, first:] /= count[:, None]
    return out


# -- the difficulty score ---------------------------------------------------------------------

@dataclass(frozen=True)
class Score:
    """A linear score on standardised difficulty features (expected ``log |r|``)."""

    mu: np.ndarray
    sigma: np.ndarray
    coef: np.ndarray
    intercept: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``x`` (difficulty features)."""
        return ((x - self.mu) / self.sigma) @ self.coef + self.intercept

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> Score:
        """Weighted ridge fit of ``y`` on ``x``, :data:`WIDENING` weights kept >= 0.

        Features whose weight comes out negative are dropped and the rest refitted, until
        none is (an active-set non-negative ridge).
        """
        w = weight / weight.sum()
        mu = w @ x
        spread = np.sqrt(w @ (x - mu) ** 2)
        active = spread > 1e-9  # a constant feature says nothing
        sigma = np.where(active, spread, 1.0)
        z = (x - mu) / sigma
        y_mu = float(w @ y)
        constrained = np.array([f in WIDENING for f in DIFFICULTY_FEATURES])
        zw = z * w[:, None]
        gram = zw.T @ z + _RIDGE / len(y) * np.eye(len(mu))
        moment = zw.T @ (y - y_mu)
        coef = np.zeros(x.shape[1])
        for _ in range(x.shape[1] + 1):
            coef[:] = 0.0
            a = np.flatnonzero(active)
            if len(a):
                coef[a] = np.linalg.solve(gram[np.ix_(a, a)], moment[a])
            negative = constrained & active & (coef < 0)
            if not negative.any():
                break
            active &= ~negative
        return cls(mu, sigma, coef, y_mu)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"mu": _round(self.mu), "sigma": _round(self.sigma), "coef": _round(self.coef),
                "intercept": float(f"{self.intercept:.6g}")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Score:
        """Inverse of :meth:`as_dict`."""
        k = len(DIFFICULTY_FEATURES)
        sigma = _array(d["sigma"], k)
        if np.any(sigma <= 0):
            raise ValueError("sigma must be positive")
        return cls(_array(d["mu"], k), sigma, _array(d["coef"], k), float(d["intercept"]))


# -- conformal quantiles ------------------------------------------------------------------------

def tail_rank(n: int, tau: float) -> int:
    """The conformal rank ``ceil((n + 1) * tau)`` (1-based); above ``n`` the tail is unbounded."""
    return math.ceil((n + 1) * tau - 1e-9)


def conformal_tails(r: np.ndarray, level: float) -> tuple[float, float] | None:
    """``(q_lo, q_hi)`` with ``-q_lo <= r <= q_hi`` at ``level`` for a new exchangeable r.

    Each tail at ``tau = (1 + level) / 2`` with the finite-sample rank
    :func:`tail_rank`; None when ``r`` has too few values for it. Both are at least 0, so
    the interval holds the prediction itself.
    """
    n = len(r)
    k = tail_rank(n, (1 + level) / 2)
    if n == 0 or k > n:
        return None
    s = np.sort(r)
    return max(-float(s[n - k]), 0.0), max(float(s[k - 1]), 0.0)


def _widened(r: np.ndarray, bins: np.ndarray, k: int, n_bins: int,
             level: float) -> tuple[float, float] | None:
    """Tails from bin ``k``, grown by neighbouring bins until it holds enough residuals."""
    for w in range(n_bins):
        inside = (bins >= k - w) & (bins <= k + w)
        q = conformal_tails(r[inside], level)
        if q is not None:
            return q
    return None


def bin_quantiles(r: np.ndarray, bins: np.ndarray, groups: np.ndarray, n_bins: int,
                  level: float, everywhere: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Per bin, the widest tails over the groups present in it, never narrowing with ``k``.

    A group counts in a bin from :data:`MIN_PRESENCE` graphs on (the groups ``everywhere``
    in every bin: real architectures can be as easy to rank as our spaces' graphs and
    still be missed by more); with fewer than the level needs, its tails come from the bin
    widened by its neighbours (:func:`_widened`), and
    with fewer in all bins together, from its extreme residuals (no finite-sample
    guarantee is possible then; the widest it has seen is the honest guess). A bin no group
    is present in takes the tails of all groups together.
    """
    q = np.zeros((n_bins, 2))
    names, codes = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(names), n_bins), dtype=np.int64)
    np.add.at(counts, (codes, bins), 1)
    counts[np.isin(names, list(everywhere))] = MIN_PRESENCE
    for k in range(n_bins):
        tails = []
        for g in np.flatnonzero(counts[:, k] >= MIN_PRESENCE):
            mine = codes == g
            tails.append(_widened(r[mine], bins[mine], k, n_bins, level) or _extremes(r[mine]))
        if not tails:
            tails.append(_widened(r, bins, k, n_bins, level) or _extremes(r))
        q[k] = np.max(np.array(tails), axis=0)
    q = np.maximum.accumulate(q, axis=0)
    return q[:, 0], q[:, 1]


def _extremes(r: np.ndarray) -> tuple[float, float]:
    return max(-float(r.min()), 0.0), max(float(r.max()), 0.0)


def residuals(measured: np.ndarray, predicted: np.ndarray, space: str) -> np.ndarray:
    """Residuals in ``space``: ``log(measured / predicted)`` or the ``log1p`` difference.

    NaN where a log residual is undefined (a value not positive).
    """
    y, p = np.asarray(measured, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if space == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((y > 0) & (p > 0), np.log(y / p), np.nan)
    return np.log1p(np.maximum(y, 0)) - np.log1p(np.maximum(p, 0))


def _balanced(groups: np.ndarray) -> np.ndarray:
    """Weights giving every group the same total."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return len(groups) / (len(names) * counts[inverse])


def _edges(scores: np.ndarray, weight: np.ndarray, n_bins: int) -> np.ndarray:
    """Weighted quantiles of ``scores`` cutting them into ``n_bins`` (fewer if tied)."""
    order = np.argsort(scores, kind="stable")
    cum = np.cumsum(weight[order]) / weight.sum()
    cuts = [scores[order][np.searchsorted(cum, k / n_bins)] for k in range(1, n_bins)]
    return np.unique(np.array(cuts, dtype=np.float64))


# -- one metric, the whole calibration ----------------------------------------------------------

@dataclass(frozen=True)
class MetricCalibration:
    """One metric's difficulty score, bins and tails (log space) per level and bin."""

    space: str  # "log" or "log1p"
    score: Score
    edges: np.ndarray  # [bins - 1], increasing
    q_lo: np.ndarray  # [len(LEVELS), bins]
    q_hi: np.ndarray
    counts: dict[str, list[int]]  # calibration graphs per group and bin
    x_max: np.ndarray  # the calibration graphs' largest value of each WIDENING feature
    inflation: np.ndarray  # [len(LEVELS), 2]: added to the tails for unseen clusters (>= 0)

    def bins(self, x: np.ndarray) -> np.ndarray:
        """Bin of each row of difficulty features ``x``.

        A graph further from the training data than every calibration graph (in any
        :data:`WIDENING` feature) is beyond what was calibrated and gets the widest bin.
        """
        b = np.searchsorted(self.edges, self.score(x), side="right")
        beyond = (x[:, _WIDENING_COLUMNS] > self.x_max + 1e-6).any(axis=1)
        return np.where(beyond, len(self.edges), b)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"space": self.space, "score": self.score.as_dict(), "edges": _round(self.edges),
                "q_lo": [_round(row) for row in self.q_lo],
                "q_hi": [_round(row) for row in self.q_hi], "counts": self.counts,
                "x_max": _round(self.x_max),
                "inflation": [_round(row) for row in self.inflation]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricCalibration:
        """Inverse of :meth:`as_dict`."""
        if d["space"] not in ("log", "log1p"):
            raise ValueError(f"space must be 'log' or 'log1p', not {d['space']!r}")
        edges = np.asarray(d["edges"], dtype=np.float64).reshape(-1)
        q_lo, q_hi = (np.asarray(d[k], dtype=np.float64) for k in ("q_lo", "q_hi"))
        shape = (len(LEVELS), len(edges) + 1)
        if q_lo.shape != shape or q_hi.shape != shape:
            raise ValueError(f"q_lo and q_hi must be {shape[0]} levels x {shape[1]} bins")
        if not (np.all(np.isfinite(q_lo)) and np.all(np.isfinite(q_hi))
                and np.all(q_lo >= 0) and np.all(q_hi >= 0) and np.all(np.isfinite(edges))):
            raise ValueError("tails must be finite and non-negative")
        return cls(d["space"], Score.from_dict(d["score"]), edges, q_lo, q_hi,
                   {str(g): [int(c) for c in v] for g, v in d.get("counts", {}).items()},
                   _array(d["x_max"], len(_WIDENING_COLUMNS)),
                   np.asarray(d["inflation"], dtype=np.float64).reshape(len(LEVELS), 2))


def _fit_bins(x: np.ndarray, r: np.ndarray, groups: np.ndarray, space: str, n_bins: int,
              folds: int, done: list[int], seed: int,
              everywhere: Iterable[str] = ()) -> tuple[MetricCalibration, np.ndarray]:
    """The score, its bins and their tails at the levels ``done`` (rows of LEVELS).

    The score is cross-fitted: each graph's bin comes from a score fitted without its fold,
    so the residuals the tails are taken from were not used to rank them; the stored score
    is then fitted on every graph. Returns the calibration and each graph's bin.
    """
    weight = _balanced(groups)
    y = np.log(np.abs(r) + _ABS_FLOOR)
    fold = np.random.default_rng(seed).permutation(len(r)) % folds
    oof = np.zeros(len(r))
    for f in range(folds):
        test = fold == f
        if test.any() and (~test).any():
            oof[test] = Score.fit(x[~test], y[~test], weight[~test])(x[test])
    edges = _edges(oof, weight, n_bins)
    bins = np.searchsorted(edges, oof, side="right")
    n = len(edges) + 1
    q_lo, q_hi = np.zeros((len(LEVELS), n)), np.zeros((len(LEVELS), n))
    for i in done:
        q_lo[i], q_hi[i] = bin_quantiles(r, bins, groups, n, LEVELS[i], everywhere)
    counts = {str(g): np.bincount(bins[groups == g], minlength=n).tolist()
              for g in np.unique(groups)}
    cal = MetricCalibration(space, Score.fit(x, y, weight), edges, q_lo, q_hi, counts,
                            x[:, _WIDENING_COLUMNS].max(axis=0), np.ones((len(LEVELS), 2)))
    return cal, bins


def _inflation(x: np.ndarray, r: np.ndarray, groups: np.ndarray, clusters: np.ndarray,
               space: str, n_bins: int, folds: int, done: list[int], seed: int,
               everywhere: Iterable[str] = ()) -> np.ndarray:
    """How much wider the tails must be to cover a cluster none of the calibration saw.

    Each cluster (a family of architectures) is left out in turn and calibrated without;
    how far its graphs' residuals pass the tails they get is measured (log units), and
    the conformal quantile of those excesses over every cluster's graphs is what is added
    to each tail ([len(LEVELS), 2]: lower and upper, at least 0) so that a new family's
    interval holds at the level as the left-out ones' did (cross-conformal over clusters,
    after Barber et al., Ann. Statist. 2021). A family's miss is mostly its own bias, the
    same in any bin, so the widening is added, not a factor on each bin's tails.
    """
    ratios: dict[int, list[list[np.ndarray]]] = {i: [[], []] for i in done}
    for c in np.unique(clusters[clusters != ""]):
        held = clusters == c
        sub, _ = _fit_bins(x[~held], r[~held], groups[~held], space, n_bins, folds, done, seed,
                           everywhere)
        b = sub.bins(x[held])
        for i in done:
            ratios[i][0].append(-r[held] - sub.q_lo[i, b])
            ratios[i][1].append(r[held] - sub.q_hi[i, b])
    out = np.zeros((len(LEVELS), 2))
    for i in done:
        tau = (1 + LEVELS[i]) / 2
        for tail in (0, 1):
            s = np.sort(np.concatenate(ratios[i][tail]))
            k = min(tail_rank(len(s), tau), len(s))
            out[i, tail] = max(s[k - 1], 0.0)
    return out


def fit_metric(x: np.ndarray, r: np.ndarray, groups: np.ndarray, space: str, *,
               clusters: np.ndarray | None = None, everywhere: Iterable[str] = (),
               n_bins: int = BINS, folds: int = 5, levels: Sequence[float] = LEVELS,
               seed: int = 0) -> MetricCalibration:
    """Calibrate one metric from difficulty features ``x`` and residuals ``r`` (finite).

    With ``clusters`` (a name per graph, "" for none; e.g. the zoo's families), the tails
    of the bins the clustered graphs are present in are widened by :func:`_inflation`, so
    that a family never calibrated on is covered as the left-out families were. Groups in
    ``everywhere`` count in every bin (:func:`bin_quantiles`). Levels
    not in ``levels`` are left at 0 (tests and cross-validation ask for a few). A higher
    level or a harder bin is never narrower; both tails are the wider of the two (the
    module docstring says why).
    """
    done = sorted({level_index(level) for level in levels})
    everywhere = set(everywhere)
    cal, bins = _fit_bins(x, r, groups, space, n_bins, folds, done, seed, everywhere)
    q_lo, q_hi = cal.q_lo, cal.q_hi
    if clusters is not None and len(np.unique(clusters[clusters != ""])) >= MIN_CLUSTERS:
        cal.inflation[:] = _inflation(x, r, groups, clusters, space, n_bins, folds, done, seed,
                                      everywhere)
        present = np.bincount(bins[clusters != ""], minlength=q_lo.shape[1]) >= MIN_PRESENCE
        present |= bool(everywhere & set(groups[clusters != ""]))
        q_lo[:, present] += cal.inflation[:, :1]
        q_hi[:, present] += cal.inflation[:, 1:]
    q_lo[:] = q_hi[:] = np.maximum(q_lo, q_hi)
    for q in (q_lo, q_hi):
        q[done] = np.maximum.accumulate(np.maximum.accumulate(q[done], axis=0), axis=1)
    return cal


def level_index(level: float) -> int:
    """Row of :data:`LEVELS` serving ``level``: the level itself or the next one up."""
    ok = isinstance(level, int | float) and not isinstance(level, bool)
    if not ok or not LEVELS[0] - 1e-9 <= level <= LEVELS[-1] + 1e-9:
        raise UsageError(f"level: got {level!r}; intervals are calibrated for levels "
                         f"{LEVELS[0]} to {LEVELS[-1]}; choose one in that range, e.g. 0.9")
    return next(i for i, v in enumerate(LEVELS) if v >= level - 1e-9)


class IntervalCalibration:
    """Intervals for one target's weights: per metric, a score, its bins and their tails.

    Load one with :meth:`load` (None when the weights folder has no calibration) and ask
    :meth:`intervals`; ``benchmarks/calibrate_intervals.py`` fits and saves them.
    """

    def __init__(self, target: str, reference: Reference,
                 metrics: dict[str, MetricCalibration], info: dict[str, Any] | None = None,
                 weights_sha256: str | None = None) -> None:
        self.target = target
        self.reference = reference
        self.metrics = metrics
        self.info = info or {}
        self.weights_sha256 = weights_sha256

    @classmethod
    def fit(cls, target: str, reference: Reference, x: np.ndarray,
            labels: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray],
            groups: np.ndarray, *, clusters: np.ndarray | None = None,
            everywhere: Iterable[str] | Mapping[str, Iterable[str]] = (),
            modes: Mapping[str, str] | None = None,
            levels: Sequence[float] = LEVELS, n_bins: int = BINS, seed: int = 0,
            info: dict[str, Any] | None = None) -> IntervalCalibration:
        """Calibrate every metric of ``predicted`` on graphs with ``labels``.

        Args:
            target: the target the weights predict.
            reference: the training data the difficulty features compare with.
            x: :func:`difficulty_features` of the calibration graphs.
            labels: metric -> measured values, row-aligned with ``x``.
            predicted: metric -> the weights' predictions (every metric is calibrated).
            groups: each graph's population (e.g. "task", "random", "zoo").
            clusters: each graph's cluster ("" for none), e.g. its zoo family: a new
                family's interval is widened as left-out families needed (fit_metric).
            everywhere: groups that count in every bin, however few of their graphs it holds
                (a mapping: per metric; a metric it does not name has none).
            modes: metric -> the weights' output mode; "log" metrics get log residuals,
                the others log1p ones. By default "log" where every value is positive.
            levels: the levels to calibrate (all of :data:`LEVELS` to save).
            n_bins: bins of the difficulty score.
            seed: the cross-fitting folds' seed.
            info: what it was calibrated on, saved with it.
        """
        metrics = {}
        for m, pred in predicted.items():
            y = np.asarray(labels[m], dtype=np.float64)
            mode = (modes or {}).get(m) or ("log" if np.all(y > 0) else "log1p")
            space = "log" if mode == "log" else "log1p"
            r = residuals(y, pred, space)
            ok = np.isfinite(r)
            if ok.sum() < MIN_GRAPHS:
                raise UsageError(f"{m}: {int(ok.sum())} calibration graphs with a finite "
                                 f"residual; at least {MIN_GRAPHS} are needed")
            cl = None if clusters is None else np.asarray(clusters)[ok]
            mine = everywhere.get(m, ()) if isinstance(everywhere, Mapping) else everywhere
            metrics[m] = fit_metric(x[ok], r[ok], np.asarray(groups)[ok], space, clusters=cl,
                                    everywhere=mine,
                                    n_bins=n_bins, levels=levels, seed=seed)
        return cls(target, reference, metrics, info)

    def intervals(self, figures: Mapping[str, np.ndarray], graphs: Sequence[GraphFeatures],
                  level: float = DEFAULT_LEVEL, notes: Sequence[Iterable[Any]] | None = None,
                  exact: Iterable[str] = ()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``metric -> (lo, hi)`` arrays around ``figures`` (row-aligned with ``graphs``).

        Args:
            figures: metric -> predicted values, one per graph.
            graphs: the graphs' features, for the difficulty score.
            level: the share of true values an interval should cover (0.5-0.99; a level
                between calibrated ones uses the next one up).
            notes: per graph, its prediction notes (kinds, dicts or Note objects); CPU
                fallback notes widen Ethos-U intervals.
            exact: metrics whose figure is computed exactly (the interval is the figure).

        Raises:
            UsageError: ``level`` outside the calibrated range, or notes of another length.
            WeightsError: a metric has no calibration (the file calibrates other weights).
        """
        return self.bounds(figures, difficulty_features(graphs, self.reference, notes), level,
                           exact)

    def bounds(self, figures: Mapping[str, np.ndarray], x: np.ndarray,
               level: float = DEFAULT_LEVEL, exact: Iterable[str] = (),
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """:meth:`intervals` given the graphs' :func:`difficulty_features` ``x``."""
        i = level_index(level)
        exact = set(exact)
        out = {}
        for m, values in figures.items():
            v = np.asarray(values, dtype=np.float64)
            if len(v) != len(x):
                raise UsageError(f"figures[{m!r}]: {len(v)} values for {len(x)} graphs")
            if m in exact:
                out[m] = (v.copy(), v.copy())
                continue
            cal = self.metrics.get(m)
            if cal is None:
                raise WeightsError(f"{FILE_NAME} for {self.target}: no calibration for "
                                   f"metric {m!r}; rerun benchmarks/calibrate_intervals.py")
            b = cal.bins(x)
            q_lo, q_hi = cal.q_lo[i, b], cal.q_hi[i, b]
            if cal.space == "log":
                out[m] = (v * np.exp(-q_lo), v * np.exp(q_hi))
            else:
                t = np.log1p(np.maximum(v, 0))
                out[m] = (np.maximum(np.expm1(t - q_lo), 0.0), np.expm1(t + q_hi))
        return out

    # -- on disk ---------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """JSON form (what :meth:`save` writes)."""
        return {"format": FORMAT, "version": VERSION, "target": self.target,
                "weights_sha256": self.weights_sha256, "levels": list(LEVELS),
                "features": list(DIFFICULTY_FEATURES), "calibrated_on": self.info,
                "reference": self.reference.as_dict(),
                "metrics": {m: c.as_dict() for m, c in self.metrics.items()}}

    def save(self, folder: str | Path) -> Path:
        """Write ``intervals.json`` into ``folder`` atomically; returns its path."""
        path = Path(folder) / FILE_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), separators=(",", ":")) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> IntervalCalibration | None:
        """The calibration in a weights folder; None when it has none.

        Raises:
            WeightsError: the file is damaged, of another version, or calibrates other
                weights than the folder's ``config.json`` names.
        """
        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WeightsError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != VERSION:
            raise WeightsError(f"{path}: not a {FORMAT} file of version {VERSION}; rerun "
                               "benchmarks/calibrate_intervals.py")
        for field, want in (("levels", list(LEVELS)), ("features", list(DIFFICULTY_FEATURES))):
            if d.get(field) != want:
                raise WeightsError(f"{path}: field {field!r} differs from this PerfSAGE's; "
                                   "rerun benchmarks/calibrate_intervals.py")
        config = Path(folder) / "config.json"
        if config.is_file() and d.get("weights_sha256") is not None:
            from perfsage.predictors.saved import read_config

            if read_config(folder)["weights_sha256"] != d["weights_sha256"]:
                raise WeightsError(f"{path}: calibrates other weights than {config}; rerun "
                                   "benchmarks/calibrate_intervals.py")
        try:
            reference = Reference.from_dict(d["reference"])
            metrics = {str(m): MetricCalibration.from_dict(c) for m, c in d["metrics"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WeightsError(f"{path}: malformed calibration ({type(exc).__name__}: "
                               f"{exc})") from None
        return cls(str(d.get("target", "")), reference, metrics, d.get("calibrated_on"),
                   d.get("weights_sha256"))


def _round(a: Iterable[float]) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(a, dtype=np.float64).ravel().tolist()]


def _array(values: Any, n: int) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        raise ValueError(f"expected {n} finite numbers, got {a.shape[0]}")
    return a
