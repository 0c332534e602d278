"""Energy of one inference on an Ethos-U NPU: an estimate from Vela's counts, not a measurement.

Vela reports no energy. We charge every event its performance model counts with a
per-event energy from the literature::

    E = N_mac * e_mac  +  sum over memories m of B_m * e_m  +  P_static * t

where ``N_mac`` is Vela's MAC count, ``B_m`` the bytes read plus written in memory ``m``
(SRAM, DRAM, off-chip flash) and ``t`` Vela's inference time (total cycles / clock).
Every constant lives in this module with its source; ``docs/energy.md`` explains the
choices. Changing a constant changes the Ethos-U targets' ``settings_hash``, so old and new
energy labels are never mixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from perfsage.errors import MeasurementError

if TYPE_CHECKING:  # prediction reads the constants below, never a summary
    from perfsage.targets.vela_summary import VelaSummary

HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
            "ISSCC 2014, table of energy per operation (45 nm, 0.9 V)")
ARM_U85 = ("Arm, Ethos-U85 announcement, April 2024 (republished at "
           "http://m.njyihanglw.cn/p/510784.html): energy efficiency up 20% on the previous "
           "Ethos-U generation")


@dataclass(frozen=True, slots=True)
class Constant:
    """One energy constant with its unit and where the number comes from."""

    value: float
    unit: str
    source: str


#: 8-bit integer multiply.
INT8_MULT = Constant(0.2, "pJ", HOROWITZ)
#: 32-bit integer add (Ethos-U sums int8 x int8 products in 32-bit accumulators).
INT32_ADD = Constant(0.1, "pJ", HOROWITZ)
#: One 64-bit read of a 1 MB SRAM (the table's 8 KB / 32 KB arrays cost 10 / 20 pJ; an
#: Ethos-U system SRAM holds hundreds of KiB to a few MiB, nearest to the 1 MB row).
SRAM_1MB_64BIT = Constant(100.0, "pJ", HOROWITZ)
#: One 64-bit DRAM access: the table gives 1.3-2.6 nJ; we take the midpoint.
DRAM_64BIT = Constant((1300.0 + 2600.0) / 2, "pJ", HOROWITZ)
#: Energy efficiency gain of the Ethos-U85 over Ethos-U55/U65 (divides its MAC energy).
U85_EFFICIENCY_GAIN = Constant(1.20, "x", ARM_U85)
#: Static (leakage) power of the NPU and its memories. No public figure for Ethos-U static
#: power was found; the term stays in the formula and contributes nothing until one is.
STATIC_POWER_UNSOURCED = Constant(0.0, "W", "none found: set to zero, see docs/energy.md")

#: Energy of one int8 MAC: one 8-bit multiply and one 32-bit accumulate.
MAC_PJ = round(INT8_MULT.value + INT32_ADD.value, 12)

#: Energy per byte moved, per Vela memory area. Off-chip flash is charged like DRAM: both
#: cross the chip boundary and Horowitz gives no flash figure (a modelling choice). On-chip
#: flash has no constant: none of our targets places data there, and a model that moves
#: bytes there is refused rather than charged a guessed figure.
BYTE_PJ: dict[str, float] = {
    "sram": SRAM_1MB_64BIT.value / 8,
    "dram": DRAM_64BIT.value / 8,
    "off_chip_flash": DRAM_64BIT.value / 8,
}


@dataclass(frozen=True, slots=True)
class EnergyProfile:
    """Per-NPU-family constants: energy per MAC and static power."""

    mac_pj: float
    static_power_w: float


#: One profile for both: the Ethos-U65 "offers the same performance and power efficiency as
#: the Ethos-U55" (eeNews Europe, October 2020, on Arm's Ethos-U65 launch).
ETHOS_U55_U65 = EnergyProfile(mac_pj=MAC_PJ, static_power_w=STATIC_POWER_UNSOURCED.value)
ETHOS_U85 = EnergyProfile(mac_pj=round(MAC_PJ / U85_EFFICIENCY_GAIN.value, 12),
                          static_power_w=STATIC_POWER_UNSOURCED.value)


@dataclass(frozen=True, slots=True)
class EnergyEstimate:
    """One inference's estimated energy, split by where it goes (picojoules)."""

    compute_pj: float
    memory_pj: dict[str, float]
    static_pj: float

    @property
    def total_pj(self) -> float:
        """All three terms together."""
        return self.compute_pj + sum(self.memory_pj.values()) + self.static_pj

    @property
    def total_mj(self) -> float:
        """All three terms together, in millijoules."""
        return self.total_pj * 1e-9


def estimate(summary: VelaSummary, profile: EnergyProfile, *,
             target: str = "vela") -> EnergyEstimate:
    """Estimate one inference's energy from a Vela summary.

    Raises:
        MeasurementError: Vela counted traffic in a memory we have no constant for.
    """
    from perfsage.targets.vela_summary import MEMORY_AREAS

    memory: dict[str, float] = {}
    for area in MEMORY_AREAS:
        moved = summary.traffic[area].total
        if area not in BYTE_PJ:
            if moved:
                raise MeasurementError(target, f"no energy constant for {area} traffic")
            continue
        memory[area] = moved * BYTE_PJ[area]
    return EnergyEstimate(
        compute_pj=summary.macs * profile.mac_pj,
        memory_pj=memory,
        static_pj=profile.static_power_w * summary.inference_time_s * 1e12,
    )


def constants(profile: EnergyProfile) -> dict:
    """The constants behind an estimate, JSON-ready, for a target's settings."""
    return {"model": "perfsage-energy-1", "byte_pj": dict(BYTE_PJ), **asdict(profile)}
