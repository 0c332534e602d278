"""Test-only targets: importable by spawned pool workers (tests/targets is on sys.path).

The model bytes are instructions, e.g. b"sleep 5", b"fail", b"crash" or b"ok 3".
"""

from __future__ import annotations

import ctypes
import time

from perfsage.errors import MeasurementError
from perfsage.targets.base import Metric, Target


class Scripted(Target):
    """Does what the model bytes say: sleeps, fails, crashes the process, or returns a value."""

    name = "scripted"
    metrics = {"value": Metric("1", "the number after 'ok'")}

    def _settings(self) -> dict:
        return {"purpose": "tests"}

    def _measure(self, model_bytes: bytes) -> dict[str, float]:
        verb, _, arg = model_bytes.decode().partition(" ")
        if verb == "sleep":
            time.sleep(float(arg))
            return {"value": 0.0}
        if verb == "fail":
            raise MeasurementError(self.name, f"rejected: {arg}")
        if verb == "crash":
            ctypes.string_at(0)  # read address 0: SIGSEGV, as a native tool would
        if verb == "bug":
            raise KeyError(arg)
        return {"value": float(arg)}
