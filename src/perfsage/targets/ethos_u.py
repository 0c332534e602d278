"""Arm Ethos-U NPUs as modelled by the Vela compiler's performance estimator.

Each target is one Vela configuration from the ``Arm/vela.ini`` bundled with Vela; all
figures come from one in-process compilation (see :mod:`perfsage.targets.vela_run`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

from perfsage.targets import energy
from perfsage.targets.base import Metric, Target, tool_version
from perfsage.targets.vela_run import VelaOptions, config_path, run_vela

if TYPE_CHECKING:  # a prediction loads this class for its options and parses no summary
    from perfsage.targets.vela_summary import VelaSummary

_METRICS: dict[str, Metric] = {
    "latency_ms": Metric("ms", "Vela's estimated inference time (total cycles / NPU clock)"),
    "npu_cycles": Metric("cycles", "NPU compute cycles in Vela's performance model"),
    "sram_kib": Metric("KiB", "peak SRAM used: the tensor arena (Shared_Sram) or its "
                              "cache (Dedicated_Sram)"),
    "flash_kib": Metric("KiB", "off-chip flash used (weights); 0 when weights live in DRAM"),
    "cpu_ops": Metric("ops", "operators Vela leaves to the host CPU"),
    "energy_mj": Metric("mJ", "estimated energy per inference (model in docs/energy.md)"),
}


class EthosU(Target):
    """An Ethos-U configuration compiled by Vela; subclasses only name the configuration."""

    options: ClassVar[VelaOptions]
    energy_profile: ClassVar[energy.EnergyProfile] = energy.ETHOS_U55_U65
    metrics = _METRICS

    def load(self) -> None:
        """Import Vela once (about 0.15 s), before the first model."""
        import ethosu.vela.vela  # noqa: F401

    def _settings(self) -> dict[str, Any]:
        ini = config_path(self.options.config).read_bytes()
        return {
            "tool": "ethos-u-vela",
            "tool_version": tool_version("ethos-u-vela"),
            "config": self.options.config,
            "config_sha256": hashlib.sha256(ini).hexdigest(),
            "accelerator_config": self.options.accelerator_config,
            "system_config": self.options.system_config,
            "memory_mode": self.options.memory_mode,
            "optimise": self.options.optimise,
            "energy": energy.constants(self.energy_profile),
        }

    def figures(self, summary: VelaSummary) -> dict[str, float]:
        """This target's metrics from a parsed Vela summary."""
        used = summary.memory_used_kib
        estimate = energy.estimate(summary, self.energy_profile, target=self.name)
        values = {
            "latency_ms": summary.inference_time_s * 1e3,
            "npu_cycles": summary.npu_cycles,
            "sram_kib": used["sram"],
            "flash_kib": used["off_chip_flash"],
            "cpu_ops": summary.cpu_ops,
            "energy_mj": estimate.total_mj,
        }
        if "dram_kib" in self.metrics:
            values["dram_kib"] = used["dram"]
        return values

    def _measure(self, model_bytes: bytes) -> dict[str, float]:
        from perfsage.targets.vela_summary import parse_summary

        out = run_vela(model_bytes, self.options, target=self.name)
        return self.figures(parse_summary(out.summary_csv, out.console, target=self.name))


_DRAM = {"dram_kib": Metric("KiB", "peak DRAM used: tensor arena and weights (SRAM caches "
                                   "them)")}


class EthosU55_128(EthosU):  # noqa: N801 - named after the product
    """Ethos-U55 with 128 MACs/cycle, 500 MHz, SRAM shared with the Cortex-M, weights in flash."""

    name = "ethos-u55-128"
    options = VelaOptions("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")


class EthosU65_256(EthosU):  # noqa: N801
    """Ethos-U65 with 256 MACs/cycle, 1 GHz, dedicated SRAM as cache, arena and weights in DRAM."""

    name = "ethos-u65-256"
    options = VelaOptions("ethos-u65-256", "Ethos_U65_High_End", "Dedicated_Sram")
    metrics = {**_METRICS, **_DRAM}


class EthosU85_256(EthosU):  # noqa: N801
    """Ethos-U85 with 256 MACs/cycle, 1 GHz, 384 KiB dedicated SRAM cache, DRAM behind it."""

    name = "ethos-u85-256"
    options = VelaOptions("ethos-u85-256", "Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB")
    metrics = {**_METRICS, **_DRAM}
    energy_profile = energy.ETHOS_U85
