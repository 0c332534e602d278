"""Read the figures out of Vela's summary CSV and console summary (Vela 5.2.0 format).

The summary CSV (``<model>_summary_<system_config>.csv``: one header row, one data row)
holds the clock, cycle counts, MAC count, memory used and bytes moved per memory area. The
one figure it lacks is how many operators Vela left to the CPU; that comes from the console
summary's ``CPU operators = N`` line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from perfsage.errors import MeasurementError

#: Memory areas as Vela names them in CSV column prefixes.
MEMORY_AREAS = ("sram", "dram", "on_chip_flash", "off_chip_flash")

_CPU_OPS = re.compile(r"^CPU operators = (\d+)", re.MULTILINE)
_NPU_OPS = re.compile(r"^NPU operators = (\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class MemoryTraffic:
    """Bytes one memory area moves in one inference, as Vela's performance model counts."""

    feature_map_read: int
    feature_map_write: int
    weight_read: int
    weight_write: int
    total: int  # also counts scales/biases and lookup tables, which have no own column

    @property
    def write(self) -> int:
        """Bytes written (feature maps and weights staged into this memory)."""
        return self.feature_map_write + self.weight_write

    @property
    def read(self) -> int:
        """Bytes read: everything that is not a write (scales and LUTs are read-only)."""
        return self.total - self.write


@dataclass(frozen=True, slots=True)
class VelaSummary:
    """Every figure PerfSAGE takes from one Vela compilation."""

    accelerator: str
    system_config: str
    memory_mode: str
    core_clock_hz: float
    inference_time_s: float
    npu_cycles: int
    total_cycles: int
    macs: int
    memory_used_kib: dict[str, float]  # per area in MEMORY_AREAS
    traffic: dict[str, MemoryTraffic]  # per area in MEMORY_AREAS
    cpu_ops: int
    npu_ops: int


def _row(summary_csv: str, target: str) -> dict[str, str]:
    rows = list(csv.reader(io.StringIO(summary_csv)))
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        raise MeasurementError(target, "Vela summary CSV is not one header row and one data row")
    return dict(zip(rows[0], rows[1], strict=True))


def _count(console: str, pattern: re.Pattern[str], what: str, target: str) -> int:
    match = pattern.search(console)
    if match is None:
        raise MeasurementError(target, f"Vela's console summary has no '{what}' line")
    return int(match.group(1))


def parse_summary(summary_csv: str, console: str, *, target: str = "vela") -> VelaSummary:
    """Parse one Vela summary CSV and the console text printed with it.

    Raises:
        MeasurementError: the text is not in the format Vela 5.2.0 writes.
    """
    row = _row(summary_csv, target)

    def num(column: str) -> float:
        try:
            return float(row[column])
        except KeyError:
            raise MeasurementError(target, f"Vela summary CSV has no column {column!r}") from None
        except ValueError:
            raise MeasurementError(
                target, f"Vela summary column {column!r} is not a number: {row[column]!r}"
            ) from None

    def text(column: str) -> str:
        if column not in row:
            raise MeasurementError(target, f"Vela summary CSV has no column {column!r}")
        return row[column]

    traffic = {
        area: MemoryTraffic(
            feature_map_read=int(num(f"{area}_feature_map_read_bytes")),
            feature_map_write=int(num(f"{area}_feature_map_write_bytes")),
            weight_read=int(num(f"{area}_weight_read_bytes")),
            weight_write=int(num(f"{area}_weight_write_bytes")),
            total=int(num(f"{area}_total_bytes")),
        )
        for area in MEMORY_AREAS
    }
    return VelaSummary(
        accelerator=text("accelerator_configuration"),
        system_config=text("system_config"),
        memory_mode=text("memory_mode"),
        core_clock_hz=num("core_clock"),
        inference_time_s=num("inference_time"),
        npu_cycles=int(num("cycles_npu")),
        total_cycles=int(num("cycles_total")),
        macs=int(num("nn_macs")),
        memory_used_kib={area: num(f"{area}_memory_used") for area in MEMORY_AREAS},
        traffic=traffic,
        cpu_ops=_count(console, _CPU_OPS, "CPU operators = N", target),
        npu_ops=_count(console, _NPU_OPS, "NPU operators = N", target),
    )
