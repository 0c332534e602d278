"""A Cortex-M microcontroller as TensorFlow Lite Micro plans it: memory figures only.

TFLM's Python interpreter (``tflite_micro`` package) builds with its recording allocator;
creating it allocates every tensor, and ``print_allocations()`` prints the arena's exact
use (``Arena allocation total N bytes`` = head + tail, the same figure as the C++
``arena_used_bytes()``, which the Python wrapper does not expose). The package is built for
the host with TFLM's reference kernels; CMSIS-NN kernels on a Cortex-M ask for extra
scratch buffers, so an on-device arena can be larger. No inference is run: the arena is
fully planned when the interpreter is created.
"""

from __future__ import annotations

import re
from typing import Any

from perfsage.errors import MeasurementError
from perfsage.targets.base import Metric, Target, tool_version
from perfsage.targets.capture import capture_output

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def parse_arena_bytes(allocations: str, *, target: str = "cortex-m-tflm") -> int:
    """Arena bytes used, from the text TFLM's ``PrintAllocations`` writes.

    Raises:
        MeasurementError: the text has no ``Arena allocation total`` line.
    """
    match = _TOTAL.search(allocations)
    if match is None:
        raise MeasurementError(target, "TFLM printed no 'Arena allocation total' line")
    return int(match.group(1))


class CortexMTflm(Target):
    """TFLite Micro's tensor arena and the flash the model occupies, for a Cortex-M MCU."""

    name = "cortex-m-tflm"
    metrics = {
        "arena_kib": Metric("KiB", "tensor arena TFLM uses (recording allocator, exact)"),
        "flash_kib": Metric("KiB", "the model flatbuffer as stored in flash (bytes / 1024)"),
    }

    def __init__(self, *, arena_limit_bytes: int = 256 * 2**20) -> None:
        self.arena_limit_bytes = arena_limit_bytes

    def load(self) -> None:
        """Import TFLM's Python interpreter once, before the first model."""
        from tflite_micro import runtime  # noqa: F401

    def _settings(self) -> dict[str, Any]:
        return {
            "tool": "tflite-micro",
            "tool_version": tool_version("tflite-micro"),
            "allocator": "RecordingMicroAllocator (kAllocationRecording)",
            "kernels": "reference (host build of the Python package)",
            "arena_limit_bytes": self.arena_limit_bytes,
        }

    def _measure(self, model_bytes: bytes) -> dict[str, float]:
        from tflite_micro import runtime

        error = None
        with capture_output() as log:
            try:
                interpreter = runtime.Interpreter.from_bytes(
                    model_bytes, arena_size=self.arena_limit_bytes)
                interpreter.print_allocations()
            except Exception as exc:  # RuntimeError from TFLM, struct.error on bad buffers
                error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            detail = " | ".join(line.strip() for line in log.text.splitlines() if line.strip())
            raise MeasurementError(self.name, f"TFLM failed: {error} {detail}".strip())
        return {
            "arena_kib": parse_arena_bytes(log.text, target=self.name) / 1024,
            "flash_kib": len(model_bytes) / 1024,
        }
