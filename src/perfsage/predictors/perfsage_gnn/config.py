"""A GNN weights folder's ``config.json``, read once into a checked :class:`ModelSpec`.

The config is the model spec on disk (``spec``): what the network's outputs mean and how
they are scaled, its node columns by name, its readouts, how inputs are standardised, its
constants, the training domain and data; the safetensors beside it hold the arrays those
settings must fit. :func:`read_spec` first checks the config is of this PerfSAGE's spec
version and unedited (``spec_sha256``), then each field: a field that is missing, of the
wrong type, non-finite, a scale that is not above 0, a metric or column the config does not
know, or an array whose shape does not fit, ends in one :class:`~perfsage.errors.WeightsError`
naming the file and the field, before any prediction is made: never a KeyError, a
broadcast error or a NaN. A config of the format before specs is refused with the command
that converts it (``migrate``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors.features import GLOBAL_FEATURES, OP_TYPES
from perfsage.predictors.outputs import ADDITIVE_METRICS, PEAK_METRICS
from perfsage.predictors.perfsage_gnn.spec import (
    NET_CONSTANTS,
    SPEC_VERSION,
    ModelSpec,
    basis_names,
    column_groups,
    spec_sha256,
)

#: How a metric's labels were scaled before standardising (``outputs.output_scaling``).
MODES = ("log", "log1p", "constant")
#: The command that converts a config written before specs, with the folder to fill in.
MIGRATE = "python scripts/migrate_weights.py {folder}"


def read_spec(raw: Any, tensors: dict[str, np.ndarray],
              source: str = "weights config") -> ModelSpec:
    """The spec of a weights config as read from disk (``raw``: the parsed JSON).

    Checks, in order: the spec version, ``spec_sha256`` against the config's contents,
    every field (:func:`parse_spec`) and the tensors' shapes against the fields.

    Raises:
        WeightsError: naming ``source`` and what is wrong.
    """
    if not isinstance(raw, dict):
        raise WeightsError(f"{source}: not a JSON object")
    if "spec_version" not in raw:
        folder = Path(source).parent if source.endswith(".json") else "DIR"
        raise WeightsError(f"{source}: a weights config from before model specs; convert it "
                           f"once with `{MIGRATE.format(folder=folder)}`")
    f = _Fields(raw, source)
    if raw["spec_version"] != SPEC_VERSION:
        f.fail("spec_version", f"is {raw['spec_version']!r}; this PerfSAGE reads spec "
               f"version {SPEC_VERSION}")
    sealed = f.text("spec_sha256")
    if sealed != spec_sha256(raw):
        raise WeightsError(f"{source}: edited after it was written (field 'spec_sha256' does "
                           "not match the config's contents); restore the file or retrain")
    spec = parse_spec(raw, source)
    _check_tensors(spec, tensors, f)
    return spec


def parse_spec(raw: Any, source: str = "weights config") -> ModelSpec:
    """Every field of a spec, checked against each other (not against tensors or a hash).

    Training calls this on the spec it is about to train with, before any tensor exists.

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
    constants = f.mapping("constants")
    for m in metrics:
        if modes[m] == "constant":
            f.number(constants.get(m), f"constants.{m}")
    additive = f.metric_subset("additive", metrics, ADDITIVE_METRICS, "an additive")
    peak = f.metric_subset("peak", metrics, PEAK_METRICS, "a peak-memory")
    for m in (*additive, *peak):
        if modes[m] != "log":
            f.fail("additive" if m in additive else "peak",
                   f"names {m!r}, whose mode is {modes[m]!r}, not 'log'")
    node_columns = f.strings("node_columns")
    try:
        groups = column_groups(node_columns)
    except ValueError as exc:
        f.fail("node_columns", str(exc))
    roofline_target = f.raw.get("roofline_target")  # absent in specs without roofline
    if any(g.name == "roofline" for g in groups) != isinstance(roofline_target, str):
        f.fail("roofline_target", "must name the Ethos-U target whose hardware the roofline "
               "node columns describe, and only where node_columns hold them")
    if f.strings("global_columns") != GLOBAL_FEATURES:
        f.fail("global_columns", f"differs from this PerfSAGE's global features "
               f"({', '.join(GLOBAL_FEATURES)}); retrain")
    hyper = f.nested("hyper")
    trained = f.nested("trained")
    return ModelSpec(
        source=source, target=f.text("target"), metrics=metrics,
        modes={m: modes[m] for m in metrics},
        mu=f.numbers("mu", n, "metrics"), sigma=f.numbers("sigma", n, "metrics", scale=True),
        constants={m: float(constants[m]) for m in metrics if modes[m] == "constant"},
        additive=additive, peak=peak, rate_init=_rate_init(f, additive, len(basis_names(groups))),
        node_columns=node_columns, groups=groups, roofline_target=roofline_target,
        node_mu=f.numbers("node_mu", len(node_columns), "node columns"),
        node_sigma=f.numbers("node_sigma", len(node_columns), "node columns", scale=True),
        global_mu=f.numbers("global_mu", len(GLOBAL_FEATURES), "global features"),
        global_sigma=f.numbers("global_sigma", len(GLOBAL_FEATURES), "global features",
                               scale=True),
        net_constants=_net_constants(f),
        layers=hyper.integer("layers", minimum=0), hidden=hyper.integer("hidden", minimum=1),
        embed=hyper.integer("embed", minimum=1),
        type_dropout=hyper.fraction("type_dropout"),
        domain=_domain(f), data_sha256=trained.optional_text("data_sha256"),
        dataset=trained.optional_text("dataset"),
        holdout_space=trained.optional_text("holdout_space"),
        sha256=raw.get("spec_sha256"),
    )


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

    def mapping(self, field: str) -> dict[str, Any]:
        value = self.get(field)
        if not isinstance(value, dict):
            self.fail(field, f"must be an object, not {_kind(value)}")
        return value

    def optional_text(self, field: str) -> str | None:
        """A string or null (the field itself must be present)."""
        value = self.get(field)
        if value is not None and not isinstance(value, str):
            self.fail(field, f"must be a string or null, not {_kind(value)}")
        return value

    def strings(self, field: str) -> tuple[str, ...]:
        """A list of names, each a non-empty string."""
        value = self.get(field)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(field, "must be a list of names (strings)")
        return tuple(value)

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
        value = self.get(field)  # empty: no such readout
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

    def fraction(self, field: str) -> float:
        number = self.number(self.get(field), repr(self.prefix + field))
        if not 0 <= number < 1:
            self.fail(field, f"is {number}; it must be in [0, 1)")
        return number


def _kind(value: Any) -> str:
    return type(value).__name__


def _rate_init(f: _Fields, additive: tuple[str, ...], basis: int,
               ) -> tuple[tuple[float, ...], ...] | None:
    """Starting log cost rates [``basis`` quantities + overhead][additive metrics], or None."""
    value = f.get("rate_init")
    if value is None:
        return None
    rows = basis + 1
    if not additive or not isinstance(value, list) or len(value) != rows:
        f.fail("rate_init", f"must be null or {rows} rows (the {basis} cost rates "
               "and the overhead's) for an additive readout")
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != len(additive):
            f.fail("rate_init", f"row {i} must hold {len(additive)} numbers, one per additive "
                   "metric")
    return tuple(tuple(f.number(v, f"'rate_init'[{i}][{j}]") for j, v in enumerate(row))
                 for i, row in enumerate(value))


def _net_constants(f: _Fields) -> dict[str, float]:
    """The network's constants, each named in ``spec.NET_CONSTANTS``, finite and above 0."""
    constants = f.nested("net_constants")
    names = sorted(constants.raw)
    if names != sorted(NET_CONSTANTS):
        f.fail("net_constants", f"names {', '.join(names) or 'nothing'}; expected "
               f"{', '.join(sorted(NET_CONSTANTS))}")
    return {k: constants.number(constants.raw[k], f"'net_constants.{k}'", scale=True)
            for k in NET_CONSTANTS}


def _domain(f: _Fields) -> dict[str, Any] | None:
    """The training domain, checked where recorded (null: none was)."""
    if f.get("domain") is None:
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


def _check_tensors(spec: ModelSpec, tensors: dict[str, np.ndarray], f: _Fields) -> None:
    """The arrays the runtime multiplies fit the spec, so no prediction can misfire."""
    columns, hidden, embed = len(spec.node_columns), spec.hidden, spec.embed
    _fits(f, "embed.weight", _shape(tensors, "embed.weight", f, 2), (len(OP_TYPES) + 1, embed),
          f"the {len(OP_TYPES)} operator types and 'unknown' in {embed} dimensions (hyper.embed)")
    _fits(f, "lin_in.weight", _shape(tensors, "lin_in.weight", f, 2), (hidden, embed + columns),
          f"{hidden} node states (hyper.hidden) from an embedding of {embed} and the "
          f"{columns} node columns")
    _check_rounds(spec, tensors, hidden, f)
    _fits(f, "head.0.weight", _shape(tensors, "head.0.weight", f, 2),
          (None, 3 * hidden + len(GLOBAL_FEATURES)),
          f"sum, mean and max of {hidden} node states and {len(GLOBAL_FEATURES)} globals")
    _fits(f, "head.4.weight", _shape(tensors, "head.4.weight", f, 2), (len(spec.metrics), None),
          f"the config's {len(spec.metrics)} metrics")
    if spec.additive:
        basis = len(basis_names(spec.groups))
        k = basis if spec.rate_init is not None else 1
        _fits(f, "node_head.2.weight", _shape(tensors, "node_head.2.weight", f, 2),
              (k * len(spec.additive), None), f"{len(spec.additive)} additive metrics")
    if spec.rate_init is not None:
        _fits(f, "rate_log", _shape(tensors, "rate_log", f, 2),
              (len(basis_names(spec.groups)) + 1, len(spec.additive)),
              f"{len(basis_names(spec.groups))} cost rates and an overhead per additive "
              "metric")
    elif "rate_log" in tensors:
        f.fail("rate_init", "is null but the weights hold cost rates ('rate_log')")
    if spec.peak:
        _fits(f, "peak_head.2.weight", _shape(tensors, "peak_head.2.weight", f, 2),
              (len(spec.peak), None), f"{len(spec.peak)} peak metrics")


def _check_rounds(spec: ModelSpec, tensors: dict[str, np.ndarray], hidden: int,
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
