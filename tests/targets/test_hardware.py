"""The Ethos-U hardware read from Vela's ini: values checked by hand and against Vela itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from perfsage.errors import HardwareError, UnknownTargetError
from perfsage.targets.hardware import accelerator, from_options, hardware, parse
from perfsage.targets.vela_run import VelaOptions, config_path

# Read by hand from ethosu/config_files/Arm/vela.ini (Vela 5.2.0) for the three targets:
# (clock, MACs, weights, arena, cache, arena_cache_size, {memory: (clock scale, ports,
# burst, read latency, write latency, bytes per cycle)}).
_BY_HAND = {
    "ethos-u55-128": (500e6, 128, "OffChipFlash", "Sram", "Sram", 2**32, {
        "Sram": (1.0, 1, 32, 32, 32, 8.0),  # 8-byte AXI port: 4 GB/s at 500 MHz
        "OffChipFlash": (0.125, 1, 128, 64, 0, 1.0),  # 0.5 GB/s
    }),
    "ethos-u65-256": (1e9, 256, "Dram", "Dram", "Sram", 2**40, {
        "Sram": (1.0, 1, 32, 32, 32, 16.0),  # 16-byte AXI port: 16 GB/s at 1 GHz
        "Dram": (0.234375, 1, 128, 500, 250, 3.75),  # 3.75 GB/s
    }),
    "ethos-u85-256": (1e9, 256, "Dram", "Dram", "Sram", 384 * 1024, {
        "Sram": (1.0, 2, 64, 32, 32, 32.0),  # two ports: 32 GB/s
        "Dram": (0.75, 1, 128, 500, 250, 12.0),  # 12 GB/s
    }),
}


@pytest.mark.parametrize("target", sorted(_BY_HAND))
def test_ini_values_read_by_hand(target):
    clock, macs, weights, arena, cache, limit, memories = _BY_HAND[target]
    hw = hardware(target)
    assert hw.core_clock_hz == clock
    assert hw.macs_per_cycle == macs
    assert (hw.weights_memory, hw.feature_map_memory, hw.cache_memory) == (weights, arena, cache)
    assert hw.arena_cache_bytes == limit
    assert hw.spilling == (arena != cache)
    assert hw.sram_limited == (target == "ethos-u85-256")
    assert {m.name for m in hw.memories} == set(memories)
    for name, (scale, ports, burst, read, write, per_cycle) in memories.items():
        m = hw.memory(name)
        assert (m.clock_scale, m.ports_used, m.burst_length_bytes, m.read_latency_cycles,
                m.write_latency_cycles, m.bytes_per_cycle) == (scale, ports, burst, read, write,
                                                               per_cycle)
        assert m.bandwidth_bytes_per_s(clock) == per_cycle * clock
    assert hw.cycles_to_ms(clock) == 1000.0


@pytest.mark.parametrize("target", sorted(_BY_HAND))
def test_matches_velas_own_architecture_features(target):
    """Vela's ArchitectureFeatures, built from the same ini and options, agrees on every value."""
    from ethosu.vela.architecture_features import ArchitectureFeatures
    from ethosu.vela.tensor import MemArea

    hw = hardware(target)
    o = hw.options
    arch = ArchitectureFeatures([str(config_path(o.config))], o.accelerator_config,
                                o.system_config, o.memory_mode, 3, False, None)
    assert arch.core_clock == hw.core_clock_hz
    assert arch.num_macs_per_cycle * arch.ncores == hw.macs_per_cycle
    assert arch.arena_cache_size == hw.arena_cache_bytes
    assert arch.permanent_storage_mem_area.name == hw.weights_memory
    assert arch.feature_map_storage_mem_area.name == hw.feature_map_memory
    assert arch.fast_storage_mem_area.name == hw.cache_memory
    assert arch.is_spilling_enabled() == hw.spilling
    for m in hw.memories:
        area = MemArea[m.name]
        assert arch.memory_bandwidths_per_cycle[area] == m.bytes_per_cycle
        assert arch.memory_burst_length[area] == m.burst_length_bytes
        assert list(arch.memory_latency[area]) == [m.read_latency_cycles, m.write_latency_cycles]


def test_bandwidth_matches_velas_summary():
    """Vela's summary states each memory's bandwidth in GiB/s; ours is the same figure."""
    from perfsage.targets.vela_summary import MEMORY_AREAS

    fixtures = Path(__file__).parent / "fixtures"
    for target in ("ethos-u55-128", "ethos-u65-256"):
        header, row = (fixtures / f"convnet_{target}_summary.csv").read_text().splitlines()[:2]
        summary = dict(zip(header.split(","), row.split(","), strict=True))
        hw = hardware(target)
        assert float(summary["core_clock"]) == hw.core_clock_hz
        names = dict(zip(MEMORY_AREAS, ("Sram", "Dram", "OnChipFlash", "OffChipFlash"),
                         strict=True))
        for area, name in names.items():
            if any(m.name == name for m in hw.memories):
                gib_s = hw.memory(name).bandwidth_bytes_per_s(hw.core_clock_hz) / 2**30
                assert math.isclose(float(summary[f"{area}_bandwidth"]), gib_s, rel_tol=1e-9)


def test_parsed_once():
    assert hardware("ethos-u55-128") is hardware("ethos-u55-128")
    assert from_options.cache_info().hits >= 1


def test_accelerator_names():
    assert accelerator("Ethos-U65-512").macs_per_cycle == 512
    assert accelerator("ethos-u55-128").ofm_ublock == (2, 1, 8)
    assert accelerator("ethos-u85-2048").axi_port_bytes_per_cycle == 16
    for bad in ("ethos-u55-100", "ethos-u75-256", "u55"):
        with pytest.raises(HardwareError, match="ethos-u55-128"):
            accelerator(bad)


def test_not_a_vela_target():
    with pytest.raises(HardwareError, match="not an Ethos-U target"):
        hardware("cortex-m-tflm")
    with pytest.raises(UnknownTargetError):
        hardware("ethos-u99")


_MINI = """
[System_Config.Mini]
core_clock=100e6
axi0_port=Sram
axi1_port=Dram
Sram_clock_scale=0.5
Dram_burst_length=64
[Memory_Mode.Base]
const_mem_area=Axi1
arena_mem_area=Axi1
cache_mem_area=Axi0
[Memory_Mode.Small]
inherit=Memory_Mode.Base
arena_cache_size=1024
[Memory_Mode.Only]
const_mem_area=Axi0
arena_mem_area=Axi0
cache_mem_area=Axi0
"""


def _mini(mode: str, text: str = _MINI, acc: str = "ethos-u65-256"):
    return parse(text, VelaOptions(acc, "Mini", mode), source="mini.ini")


def test_defaults_and_inherit():
    hw = _mini("Small")
    assert hw.arena_cache_bytes == 1024 and hw.spilling and hw.sram_limited
    sram, dram = hw.memory("Sram"), hw.memory("Dram")
    assert sram.bytes_per_cycle == 8.0  # 16-byte port at half the clock
    assert (dram.clock_scale, dram.ports_used, dram.burst_length_bytes) == (1.0, 1, 64)
    assert (dram.read_latency_cycles, dram.write_latency_cycles) == (0, 0)
    assert _mini("Base").arena_cache_bytes == 2**40


def test_sram_only_moves_weights_to_on_chip_flash():
    hw = _mini("Only")
    assert hw.weights_memory == "OnChipFlash"
    assert hw.memory("OnChipFlash").bytes_per_cycle == hw.memory("Sram").bytes_per_cycle


@pytest.mark.parametrize(("edit", "message"), [
    (("core_clock=100e6", "core_clock=-1"), "core_clock = '-1'"),
    (("core_clock=100e6\n", ""), "has no core_clock"),
    (("Sram_clock_scale=0.5", "Sram_clock_scale=0"), "expected a number > 0"),
    (("Dram_burst_length=64", "Dram_burst_length=6.5"), "expected an integer"),
    (("axi1_port=Dram", "axi1_port=Rom"), "axi1_port = 'Rom'"),
    (("arena_cache_size=1024", "arena_cache_size=nan"), "arena_cache_size = 'nan'"),
    (("inherit=Memory_Mode.Base", "inherit=Memory_Mode.Small"), "inherits itself"),
    (("inherit=Memory_Mode.Base", "inherit=Memory_Mode.Gone"), "'Memory_Mode.Gone'"),
    (("arena_mem_area=Axi1\ncache_mem_area=Axi0\n[Memory_Mode.Small]",
      "arena_mem_area=Axi1\ncache_mem_area=Axi1\n[Memory_Mode.Small]"),
     "cache_mem_area maps to Dram"),
])
def test_invalid_ini_values(edit, message):
    old, new = edit
    assert old in _MINI
    with pytest.raises(HardwareError, match=message.replace("(", r"\(")) as info:
        _mini("Small", _MINI.replace(old, new, 1))
    assert "mini.ini" in str(info.value) or "inherit" in str(info.value)


def test_missing_sections_and_limits():
    with pytest.raises(HardwareError, match="system configuration section 'System_Config.Gone'"):
        parse(_MINI, VelaOptions("ethos-u65-256", "Gone", "Small"))
    with pytest.raises(HardwareError, match="memory mode section 'Memory_Mode.Gone'"):
        parse(_MINI, VelaOptions("ethos-u65-256", "Mini", "Gone"))
    with pytest.raises(HardwareError, match="32-bit address space"):
        _mini("Small", _MINI.replace("arena_cache_size=1024", "arena_cache_size=8589934592"),
              acc="ethos-u55-128")
    with pytest.raises(HardwareError, match="not a readable ini"):
        _mini("Small", "no section header")


def test_bundled_ini_combinations_vela_refuses():
    """A U55 system (flash on AXI1) cannot put its arena there, in Vela as here."""
    from ethosu.vela.architecture_features import ArchitectureFeatures
    from ethosu.vela.errors import ConfigOptionError

    options = VelaOptions("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Dedicated_Sram")
    with pytest.raises(HardwareError, match="arena_mem_area maps to OffChipFlash"):
        from_options(options)
    with pytest.raises(ConfigOptionError):
        ArchitectureFeatures([str(config_path())], options.accelerator_config,
                             options.system_config, options.memory_mode, 3, False, None)
    sram_only = from_options(VelaOptions("ethos-u55-128", "Ethos_U55_High_End_Embedded",
                                         "Sram_Only"))
    assert sram_only.weights_memory == "OnChipFlash" and sram_only.feature_map_memory == "Sram"
