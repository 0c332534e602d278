"""A GNN weights folder's ``config.json``, parsed once into a typed, validated object.

The config says what the network's outputs mean (metrics, their scaling), how its inputs
are standardised and which readouts it has; the safetensors beside it hold the arrays
those settings must fit. A field that is missing, of the wrong type, non-finite, a scale
that is not above 0, a metric the config does not know or an array whose shape does not
fit the settings each end in one :class:`~perfsage.errors.WeightsError` naming the file and
the field, before any prediction is made: never a KeyError, a broadcast error or a NaN.
The file's format on disk is unchanged; :class:`GNNConfig` is how the code reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors.features import COST_BASIS, GLOBAL_FEATURES, OP_TYPES
from perfsage.predictors.outputs import ADDITIVE_METRICS, PEAK_METRICS
from perfsage.predictors.perfsage_gnn.runtime import node_input_width

#: How a metric's labels were scaled before standardising (``outputs.output_scaling``).
MODES = ("log", "log1p", "constant")


@dataclass(frozen=True, slots=True)
class GNNConfig:
    """What a GNN weights config says, checked against itself and its tensors."""

    source: str  # the config file, for messages
    target: str
    metrics: tuple[str, ...]  # output order
    modes: dict[str, str]  # metric -> one of MODES
    mu: tuple[float, ...]  # per metric, of the scaled labels
    sigma: tuple[float, ...]  # per metric, above 0
    constants: dict[str, float]  # value of each metric whose mode is "constant"
    additive: tuple[str, ...]  # metrics of the additive readout (empty: pooled)
    peak: tuple[str, ...]  # metrics of the peak readout
    align: bool  # channel-alignment node columns
    layers: int  # message-passing rounds
    type_dropout: float  # > 0: operator types never trained on are read as unknown
    node_mu: tuple[float, ...]
    node_sigma: tuple[float, ...]
    global_mu: tuple[float, ...]
    global_sigma: tuple[float, ...]
    domain: dict[str, Any] | None  # the training domain (predictors.domain), if recorded

    @property
    def scale(self) -> dict[str, Any]:
        """The output scaling in the form ``outputs.decode`` takes."""
        return {"metrics": list(self.metrics), "modes": self.modes, "mu": list(self.mu),
                "sigma": list(self.sigma), "constants": self.constants}

    @classmethod
    def parse(cls, raw: Any, tensors: dict[str, np.ndarray],
              source: str = "weights config") -> GNNConfig:
        """Validate ``raw`` (the parsed JSON) against itself and ``tensors``.

        Raises:
            WeightsError: naming ``source`` and the first field that is wrong.
        """
        f = _Fields(raw, source)
        metrics = f.names("metrics")
        n = len(metrics)
        modes = f.mapping("modes")
        for m in metrics:
            if m not in modes:
                f.fail("modes", f"has no mode for metric {m!r}")
            if modes[m] not in MODES:
                f.fail(f"modes.{m}", f"is {modes[m]!r}; expected one of {', '.join(MODES)}")
        constants = f.mapping("constants", optional=True)
        for m in metrics:
            if modes[m] == "constant":
                f.number(constants.get(m), f"constants.{m}")
        hyper = f.nested("hyper")
        spec = cls(
            source=source, target=f.text("target"), metrics=metrics,
            modes={m: modes[m] for m in metrics},
            mu=f.numbers("mu", n, "metrics"), sigma=f.numbers("sigma", n, "metrics", scale=True),
            constants={m: float(constants[m]) for m in metrics if modes[m] == "constant"},
            additive=f.metric_subset("additive", metrics, ADDITIVE_METRICS, "an additive"),
            peak=f.metric_subset("peak", metrics, PEAK_METRICS, "a peak-memory"),
            align=f.flag("align"),
            layers=hyper.integer("layers", minimum=0),
            type_dropout=hyper.fraction("type_dropout", default=0.0),
            node_mu=f.numbers("node_mu"), node_sigma=f.numbers("node_sigma", scale=True),
            global_mu=f.numbers("global_mu", len(GLOBAL_FEATURES), "global features"),
            global_sigma=f.numbers("global_sigma", len(GLOBAL_FEATURES), "global features",
                                   scale=True),
            domain=_domain(f),
        )
        for m in (*spec.additive, *spec.peak):
            if modes[m] != "log":
                f.fail("additive" if m in spec.additive else "peak",
                       f"names {m!r}, whose mode is {modes[m]!r}, not 'log'")
        _check_tensors(spec, tensors, f)
        return spec


class _Fields:
    """Typed reads of the config's fields, each failing with the file and the field.

    ``prefix`` names a nested object's fields in messages (``hyper.layers``).
    """

    def __init__(self, raw: Any, source: str, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            raise WeightsError(f"{source}: not a JSON object" if not prefix else
                               f"{source}: field {prefix[:-1]!r} must be an object, not "
                               f"{_kind(raw)}")
        self.raw, self.source, self.prefix = raw, source, prefix

    def fail(self, field: str, problem: str) -> NoReturn:
        raise WeightsError(f"{self.source}: field {self.prefix + field!r} {problem}")

    def get(self, field: str) -> Any:
        if field not in self.raw:
            raise WeightsError(f"{self.source}: missing field {self.prefix + field!r}")
        return self.raw[field]

    def nested(self, field: str) -> _Fields:
        return _Fields(self.get(field), self.source, f"{self.prefix}{field}.")

    def text(self, field: str) -> str:
        value = self.get(field)
        if not isinstance(value, str) or not value:
            self.fail(field, f"must be a string, not {_kind(value)}")
        return value

    def flag(self, field: str) -> bool:
        value = self.raw.get(field, False)  # absent: written before the option existed
        if not isinstance(value, bool):
            self.fail(field, f"must be true or false, not {value!r}")
        return value

    def mapping(self, field: str, optional: bool = False) -> dict[str, Any]:
        value = self.raw.get(field, {}) if optional else self.get(field)
        if not isinstance(value, dict):
            self.fail(field, f"must be an object, not {_kind(value)}")
        return value

    def items(self, field: str, kind: type) -> list[Any]:
        """A list whose entries are all of ``kind``."""
        value = self.get(field)
        if not isinstance(value, list) or not all(
                isinstance(v, kind) and not isinstance(v, bool) for v in value):
            self.fail(field, f"must be a list of {kind.__name__} values")
        return value

    def names(self, field: str) -> tuple[str, ...]:
        value = self.get(field)
        if not isinstance(value, list) or not value:
            self.fail(field, f"must be a list of metric names, not {_kind(value)}")
        for name in value:
            if not isinstance(name, str) or not name:
                self.fail(field, f"holds {name!r}, not a metric name")
            if value.count(name) > 1:
                self.fail(field, f"names {name!r} twice")
        return tuple(value)

    def metric_subset(self, field: str, metrics: tuple[str, ...], allowed: tuple[str, ...],
                      kind: str) -> tuple[str, ...]:
        value = self.raw.get(field, [])  # absent: no such readout
        if not isinstance(value, list):
            self.fail(field, f"must be a list of metric names, not {_kind(value)}")
        for name in value:
            if name not in metrics:
                self.fail(field, f"names unknown metric {name!r} (the config's metrics: "
                          f"{', '.join(metrics)})")
            if name not in allowed:
                self.fail(field, f"names {name!r}, not {kind} metric ({', '.join(allowed)})")
        return tuple(value)

    def number(self, value: Any, where: str, scale: bool = False) -> float:
        """A finite number (above 0 for a ``scale``); ``where`` names it in messages."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WeightsError(f"{self.source}: field {where}: expected a number, not "
                               f"{_kind(value)}")
        if not math.isfinite(value) or (scale and value <= 0):
            need = "a finite number above 0 (a scale divides)" if scale else "a finite number"
            raise WeightsError(f"{self.source}: field {where} is {value}; it must be {need}")
        return float(value)

    def numbers(self, field: str, n: int | None = None, per: str = "",
                scale: bool = False) -> tuple[float, ...]:
        value = self.get(field)
        if not isinstance(value, list):
            self.fail(field, f"must be a list of numbers, not {_kind(value)}")
        if n is not None and len(value) != n:
            self.fail(field, f"has {len(value)} entries; the config has {n} {per}")
        where = repr(self.prefix + field)
        return tuple(self.number(v, f"{where}[{i}]", scale) for i, v in enumerate(value))

    def integer(self, field: str, minimum: int) -> int:
        value = self.get(field)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"is {value!r}; it must be an integer")
        if value < minimum:
            self.fail(field, f"is {value}; it must be at least {minimum}")
        return value

    def fraction(self, field: str, default: float) -> float:
        number = self.number(self.raw.get(field, default), repr(self.prefix + field))
        if not 0 <= number < 1:
            self.fail(field, f"is {number}; it must be in [0, 1)")
        return number


def _kind(value: Any) -> str:
    return type(value).__name__


def _domain(f: _Fields) -> dict[str, Any] | None:
    """The training domain, checked where present (weights may predate it)."""
    if not f.raw.get("domain"):
        return None
    domain = f.nested("domain")
    domain.items("op_types", str)
    domain.items("bits", int)
    for key in ("global_min", "global_max"):
        domain.numbers(key, len(GLOBAL_FEATURES), "global features")
    return domain.raw


def _shape(tensors: dict[str, np.ndarray], name: str, f: _Fields, rank: int) -> tuple[int, ...]:
    array = tensors.get(name)
    if array is None:
        raise WeightsError(f"{f.source}: the weights have no tensor {name!r}")
    if array.ndim != rank:
        raise WeightsError(f"{f.source}: tensor {name!r} has shape {list(array.shape)}; "
                           f"expected {rank} dimensions")
    return array.shape


def _fits(f: _Fields, name: str, shape: tuple[int, ...], expected: tuple[int | None, ...],
          why: str) -> None:
    """``shape`` matches ``expected`` (None: any length), else a message giving ``why``."""
    if any(e is not None and s != e for s, e in zip(shape, expected, strict=True)):
        want = ", ".join("*" if e is None else str(e) for e in expected)
        raise WeightsError(f"{f.source}: tensor {name!r} has shape {list(shape)}; {why} "
                           f"need [{want}]")


def _check_tensors(spec: GNNConfig, tensors: dict[str, np.ndarray], f: _Fields) -> None:
    """The arrays the runtime multiplies fit the settings, so no prediction can misfire."""
    columns = node_input_width(bool(spec.peak), spec.align)
    for field in ("node_mu", "node_sigma"):
        if len(getattr(spec, field)) != columns:
            f.fail(field, f"has {len(getattr(spec, field))} entries; node features with "
                   f"{'the' if spec.peak else 'no'} peak readout and align "
                   f"{'on' if spec.align else 'off'} have {columns} columns")
    types, embed = _shape(tensors, "embed.weight", f, 2)
    _fits(f, "embed.weight", (types, embed), (len(OP_TYPES) + 1, None),
          f"the {len(OP_TYPES)} operator types and 'unknown'")
    hidden = _shape(tensors, "lin_in.weight", f, 2)[0]
    _fits(f, "lin_in.weight", _shape(tensors, "lin_in.weight", f, 2), (hidden, embed + columns),
          f"an embedding of {embed} and {columns} node columns")
    _check_rounds(spec, tensors, hidden, f)
    _fits(f, "head.0.weight", _shape(tensors, "head.0.weight", f, 2),
          (None, 3 * hidden + len(GLOBAL_FEATURES)),
          f"sum, mean and max of {hidden} node states and {len(GLOBAL_FEATURES)} globals")
    _fits(f, "head.4.weight", _shape(tensors, "head.4.weight", f, 2), (len(spec.metrics), None),
          f"the config's {len(spec.metrics)} metrics")
    rates = tensors.get("rate_log")
    if spec.additive:
        k = len(COST_BASIS) if rates is not None else 1
        _fits(f, "node_head.2.weight", _shape(tensors, "node_head.2.weight", f, 2),
              (k * len(spec.additive), None), f"{len(spec.additive)} additive metrics")
    if rates is not None:
        if rates.ndim != 2 or rates.shape[0] != len(COST_BASIS) + 1:
            raise WeightsError(f"weights for {spec.target} have {len(rates) - 1} cost rates; "
                               f"this PerfSAGE computes {len(COST_BASIS)}; retrain")
        _fits(f, "rate_log", rates.shape, (len(COST_BASIS) + 1, len(spec.additive)),
              f"{len(COST_BASIS)} cost rates and an overhead per additive metric")
    if spec.peak:
        _fits(f, "peak_head.2.weight", _shape(tensors, "peak_head.2.weight", f, 2),
              (len(spec.peak), None), f"{len(spec.peak)} peak metrics")


def _check_rounds(spec: GNNConfig, tensors: dict[str, np.ndarray], hidden: int,
                  f: _Fields) -> None:
    """One forward and one backward SAGE pair per round, ``hyper.layers`` rounds, no more."""
    for i in range(spec.layers):
        for name in (f"{d}.{i}.{lin}.weight" for d in ("fwd", "bwd") for lin in ("lin_l",
                                                                                 "lin_r")):
            if name not in tensors:
                f.fail("hyper.layers", f"is {spec.layers} but the weights have no tensor "
                       f"{name!r}")
            _fits(f, name, _shape(tensors, name, f, 2), (hidden, hidden),
                  f"rounds of {hidden} node states")
    extra = f"fwd.{spec.layers}.lin_l.weight"
    if extra in tensors:
        f.fail("hyper.layers", f"is {spec.layers} but the weights hold another round "
               f"({extra!r})")
