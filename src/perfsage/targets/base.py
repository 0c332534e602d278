"""What every hardware target is: a name, the metrics it produces, and the settings behind them.

A label in the dataset is only comparable with another label measured under the same tool
version and options, so each target states those as a plain ``settings`` dict and stores the
dict's ``settings_hash`` with every label. Running a tool is kept apart from reading its
output (see the ``*_run``/``*_summary`` modules) so that parsers are tested on saved output.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from perfsage.errors import MeasurementError


@dataclass(frozen=True, slots=True)
class Metric:
    """One figure a target produces: its unit and what it means."""

    unit: str
    description: str


def tool_version(package: str) -> str:
    """The installed version of a measuring tool's package, for its settings.

    ``importlib.metadata`` costs ~35 ms to import, paid here only when settings are asked
    for (measuring, annotating), never on the prediction path.
    """
    from importlib.metadata import version

    return version(package)


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings as canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Target(ABC):
    """A device (or a tool's model of one) that turns TFLite bytes into cost figures.

    Subclasses set the class attributes, implement :meth:`_settings` and :meth:`_measure`,
    and get one line in :mod:`perfsage.targets.registry`. Instances are cheap: heavy tools
    are imported by :meth:`load` (called by :meth:`measure` on first use), so a worker
    process loads each tool once and then measures many models.
    """

    #: Registry key, stable across releases: labels are stored under it.
    name: ClassVar[str]
    #: Metric name -> unit and description; :meth:`measure` returns exactly these keys.
    metrics: ClassVar[dict[str, Metric]]
    #: True when the tool also reports figures per layer (none of ours exposes them yet).
    per_layer: ClassVar[bool] = False
    #: True when figures come from running the model on this machine, not from a model of
    #: the device: such figures vary from run to run and depend on the host.
    measured_on_host: ClassVar[bool] = False
    #: True when two calls on the same bytes give the same figures (results may be cached).
    deterministic: ClassVar[bool] = True
    #: True when the measurement needs the machine to itself (timing): it takes the machine
    #: lock exclusively; every other target takes it shared.
    needs_quiet_machine: ClassVar[bool] = False

    @abstractmethod
    def _settings(self) -> dict[str, Any]:
        """Tool versions and options that define this target's figures (JSON-ready)."""

    @abstractmethod
    def _measure(self, model_bytes: bytes) -> dict[str, float]:
        """Measure one model; raise MeasurementError when the tool rejects or fails on it."""

    def load(self) -> None:  # noqa: B027 - optional hook, most targets import lazily
        """Import and initialise the tool (idempotent); the default does nothing."""

    @cached_property
    def settings(self) -> dict[str, Any]:
        """Tool versions and options behind every figure this target produces."""
        return {"target": self.name, **self._settings()}

    @property
    def settings_hash(self) -> str:
        """Hash of :attr:`settings`, stored with each label to tell incomparable ones apart."""
        return settings_hash(self.settings)

    def measure(self, model_bytes: bytes) -> dict[str, float]:
        """Measure one model and return ``{metric: value}`` for every metric in ``metrics``.

        Takes the machine-wide lock first (exclusively when :attr:`needs_quiet_machine`),
        so timing never overlaps another measurement from any process of this user.

        Raises:
            MeasurementError: the tool rejected the model or failed on it.
        """
        from perfsage.targets.lock import machine_lock

        if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
            raise TypeError(f"model_bytes must be bytes, not {type(model_bytes).__name__}")
        self.load()
        with machine_lock(exclusive=self.needs_quiet_machine):
            values = self._measure(bytes(model_bytes))
        missing = set(self.metrics) - set(values)
        extra = set(values) - set(self.metrics)
        if missing or extra:
            raise MeasurementError(
                self.name, f"produced metrics {sorted(values)}, expected {sorted(self.metrics)}")
        return {k: float(values[k]) for k in self.metrics}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.settings_hash[:12]}>"
