"""What an Ethos-U target is made of, read from the ``vela.ini`` Vela itself reads.

A target is named by Vela's options (:class:`~perfsage.targets.vela_run.VelaOptions`):
an accelerator configuration (``ethos-u55-128``), a system configuration (a section
``[System_Config.NAME]`` of the ini: core clock, and per memory a clock scale, ports,
burst length, latencies) and a memory mode (``[Memory_Mode.NAME]``: which AXI port holds
the weights, the tensor arena and the cache, and how much SRAM the arena or cache may
take). :func:`hardware` reads those sections once into a typed, validated
:class:`Hardware`, with no import of Vela, so the prediction path can afford it.

How Vela turns the ini into numbers (``ethosu/vela/architecture_features.py``, Vela
5.2.0, which hands the same values on to its C++ core):

* a memory's bandwidth in bytes per NPU cycle is ``axi_port_bytes x ports_used x
  clock_scale``, with 8-byte AXI ports on Ethos-U55 and 16-byte ports on Ethos-U65 and
  Ethos-U85; the ``*_clock_scale`` is the memory's clock relative to the core clock;
* keys a section lacks default to a clock scale of 1, one port, a burst length of 1 and
  zero latency; ``inherit=SECTION`` takes the keys of another section first;
* the memory mode names AXI ports (``Axi0``/``Axi1``) that the system configuration maps
  to memories (``axi0_port=Sram``); weights must live in DRAM or flash, the arena in SRAM
  or DRAM, the cache in SRAM; weights mapped onto SRAM (``Sram_Only``) are moved to an
  on-chip flash with SRAM's characteristics;
* ``arena_cache_size`` defaults to the whole address space (2^32 bytes on Ethos-U55,
  2^40 on Ethos-U65 and Ethos-U85): only the ``Dedicated_Sram_*KB`` modes limit it.

The MACs per cycle of an accelerator configuration are the number its name ends with, as
Vela reads them (and as Arm's product briefs list the configurations: Ethos-U55 32-256,
Ethos-U65 256 or 512, Ethos-U85 128-2048 MACs/cycle); Vela checks for Ethos-U55 and U65
that this equals its micro-block height x width x depth x the 8-wide dot product.
"""

from __future__ import annotations

import configparser
import hashlib
import math
from dataclasses import dataclass
from functools import cache

from perfsage.errors import HardwareError
from perfsage.targets.vela_run import VelaOptions, config_path

#: Vela's memory areas, by the names its ini uses.
MEMORIES = ("Sram", "Dram", "OnChipFlash", "OffChipFlash")
_PORTS = ("Axi0", "Axi1")
_WEIGHT_MEMORIES = ("Dram", "OnChipFlash", "OffChipFlash")
_ARENA_MEMORIES = ("Sram", "Dram")


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One accelerator configuration's compute facts (Vela's ``architecture_features``)."""

    name: str  # Vela's --accelerator-config, e.g. "ethos-u55-128"
    family: str  # "ethos-u55", "ethos-u65" or "ethos-u85"
    macs_per_cycle: int  # int8 x int8 multiply-accumulates per NPU cycle, all cores
    ofm_ublock: tuple[int, int, int]  # (height, width, depth) of the smallest output block
    axi_port_bytes_per_cycle: int  # width of one AXI port
    address_bits: int  # the AXI address width: Vela's default arena_cache_size is 2^bits


#: Output micro-blocks (height, width, depth) of Vela's ``accelerator_configs`` table for
#: Ethos-U55 and Ethos-U65; Ethos-U85's live in Vela's C++ core, so none is assumed (1x1
#: spatially, 8 channels: the output depth granule every configuration shares).
_OFM_UBLOCK = {
    "ethos-u55-32": (1, 1, 4), "ethos-u55-64": (1, 1, 8), "ethos-u55-128": (2, 1, 8),
    "ethos-u55-256": (2, 2, 8), "ethos-u65-256": (2, 2, 8), "ethos-u65-512": (2, 2, 8),
}
_NO_UBLOCK = (1, 1, 8)
#: family -> (AXI port bytes per cycle, address bits), from Vela's ArchitectureFeatures.
_FAMILIES = {"ethos-u55": (8, 32), "ethos-u65": (16, 40), "ethos-u85": (16, 40)}
_MACS = {"ethos-u55": (32, 64, 128, 256), "ethos-u65": (256, 512),
         "ethos-u85": (128, 256, 512, 1024, 2048)}


def accelerator(name: str) -> Accelerator:
    """The compute facts of a Vela accelerator configuration name.

    Raises:
        HardwareError: the name is not one Vela knows.
    """
    family, _, macs_text = name.lower().rpartition("-")
    if family not in _FAMILIES or not macs_text.isdigit() or int(macs_text) not in _MACS[family]:
        known = [f"{f}-{m}" for f, ms in _MACS.items() for m in ms]
        raise HardwareError(f"accelerator configuration {name!r} is not one Vela knows; "
                            f"choose from: {', '.join(known)}")
    port_bytes, address_bits = _FAMILIES[family]
    key = f"{family}-{macs_text}"
    return Accelerator(key, family, int(macs_text), _OFM_UBLOCK.get(key, _NO_UBLOCK),
                       port_bytes, address_bits)


@dataclass(frozen=True, slots=True)
class Memory:
    """One memory of a system configuration, as the ini states it.

    Cycles are NPU (core) cycles; ``bytes_per_cycle`` is Vela's bandwidth of the memory.
    """

    name: str  # one of MEMORIES
    clock_scale: float  # memory clock / core clock
    ports_used: int
    burst_length_bytes: int
    read_latency_cycles: int
    write_latency_cycles: int
    max_reads: int  # outstanding transactions the ini allows (0: not stated)
    max_writes: int
    bytes_per_cycle: float

    def bandwidth_bytes_per_s(self, core_clock_hz: float) -> float:
        """Peak bandwidth in bytes per second at the given core clock."""
        return self.bytes_per_cycle * core_clock_hz


@dataclass(frozen=True, slots=True)
class Hardware:
    """An Ethos-U target: accelerator, clock, memories, and where each kind of data lives."""

    options: VelaOptions
    accelerator: Accelerator
    core_clock_hz: float
    memories: tuple[Memory, ...]  # the memories on the two AXI ports (one when both agree)
    weights_memory: str  # const_mem_area, as a memory name
    feature_map_memory: str  # arena_mem_area: where the tensor arena lives
    cache_memory: str  # cache_mem_area: always Sram
    arena_cache_bytes: int  # SRAM the arena (Shared_Sram) or the cache (Dedicated_Sram) may use
    ini_sha256: str

    @property
    def macs_per_cycle(self) -> int:
        """int8 MACs per NPU cycle of the accelerator configuration."""
        return self.accelerator.macs_per_cycle

    @property
    def spilling(self) -> bool:
        """True when SRAM is a cache in front of an arena in DRAM (Vela's 'spilling')."""
        return self.cache_memory != self.feature_map_memory

    @property
    def sram_limited(self) -> bool:
        """True when the memory mode bounds SRAM below the whole address space."""
        return self.arena_cache_bytes < 1 << self.accelerator.address_bits

    def memory(self, name: str) -> Memory:
        """The memory called ``name`` (one of :data:`MEMORIES`).

        Raises:
            HardwareError: this system configuration has no such memory.
        """
        for m in self.memories:
            if m.name == name:
                return m
        raise HardwareError(f"system configuration {self.options.system_config} has no "
                            f"{name}; it has: {', '.join(m.name for m in self.memories)}")

    def bytes_per_cycle(self, name: str) -> float:
        """Bandwidth of memory ``name`` in bytes per NPU cycle."""
        return self.memory(name).bytes_per_cycle

    def cycles_to_ms(self, cycles: float) -> float:
        """NPU cycles as milliseconds at the core clock."""
        return cycles / self.core_clock_hz * 1e3


class _Ini:
    """Sections of Vela's ini with Vela's ``inherit`` rule: a parent's keys first."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.parser = configparser.ConfigParser()
        try:
            self.parser.read_string(text, source=source)
        except configparser.Error as exc:
            raise HardwareError(f"{source}: not a readable ini file: "
                                f"{' '.join(str(exc).split())}") from None

    def section(self, name: str, kind: str) -> dict[str, str]:
        """Every key of ``[name]``, inherited ones included."""
        chain: list[str] = []
        while True:
            if not self.parser.has_section(name):
                what = f"{kind} {chain[0]!r} inherits {name!r}, which" if chain else \
                    f"{kind} section {name!r}"
                raise HardwareError(f"{self.source}: {what} is not in the file")
            if name in chain:
                raise HardwareError(f"{self.source}: section {name!r} inherits itself")
            chain.append(name)
            parent = self.parser.get(name, "inherit", fallback=None)
            if parent is None:
                break
            name = parent
        keys: dict[str, str] = {}
        for section in reversed(chain):
            keys.update({k: v for k, v in self.parser.items(section) if k != "inherit"})
        return keys


def _number(keys: dict[str, str], key: str, default: float, section: str, source: str, *,
            minimum: float, integer: bool = False) -> float:
    text = keys.get(key.lower())
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        raise HardwareError(f"{source}: [{section}] {key} = {text!r}; expected {kind} "
                            f">= {minimum:g}")
    return int(value) if integer else value


def _choice(keys: dict[str, str], key: str, choices: tuple[str, ...], section: str,
            source: str) -> str:
    value = keys.get(key.lower())
    if value not in choices:
        raise HardwareError(f"{source}: [{section}] {key} = {value!r}; expected one of "
                            f"{', '.join(choices)}")
    return value


def _memory(keys: dict[str, str], name: str, port_bytes: int, section: str,
            source: str) -> Memory:
    def num(suffix: str, default: float, minimum: float, integer: bool = True) -> float:
        return _number(keys, f"{name}_{suffix}", default, section, source, minimum=minimum,
                       integer=integer)

    scale = num("clock_scale", 1.0, 0.0, integer=False)
    if scale <= 0:
        raise HardwareError(f"{source}: [{section}] {name}_clock_scale = {scale:g}; "
                            "expected a number > 0")
    ports = max(1, int(num("ports_used", 1, 0)))  # Vela: max(1, ports_used)
    return Memory(name, scale, ports, int(num("burst_length", 1, 1)),
                  int(num("read_latency", 0, 0)), int(num("write_latency", 0, 0)),
                  int(num("max_reads", 0, 0)), int(num("max_writes", 0, 0)),
                  port_bytes * ports * scale)


def parse(text: str, options: VelaOptions, *, source: str = "vela.ini") -> Hardware:
    """A :class:`Hardware` from the text of a Vela ini and the options that pick from it.

    Raises:
        HardwareError: a section is missing or a value is invalid; the message names the
            file, the section, the key and what would be valid.
    """
    acc = accelerator(options.accelerator_config)
    ini = _Ini(text, source)
    sys_name = f"System_Config.{options.system_config}"
    system = ini.section(sys_name, "system configuration")
    clock = _number(system, "core_clock", math.nan, sys_name, source, minimum=1.0)
    if math.isnan(clock):
        raise HardwareError(f"{source}: [{sys_name}] has no core_clock")
    axi = {port: _choice(system, f"{port.lower()}_port", MEMORIES, sys_name, source)
           for port in _PORTS}
    memories = {name: _memory(system, name, acc.axi_port_bytes_per_cycle, sys_name, source)
                for name in dict.fromkeys(axi.values())}

    mode_name = f"Memory_Mode.{options.memory_mode}"
    mode = ini.section(mode_name, "memory mode")
    area = {key: axi[_choice(mode, key, _PORTS, mode_name, source)]
            for key in ("const_mem_area", "arena_mem_area", "cache_mem_area")}
    limit = 1 << acc.address_bits
    arena_cache = int(_number(mode, "arena_cache_size", limit, mode_name, source, minimum=0,
                              integer=True))
    if arena_cache > limit:
        raise HardwareError(f"{source}: [{mode_name}] arena_cache_size = {arena_cache}; "
                            f"expected at most {limit} (the {acc.address_bits}-bit address "
                            "space)")
    weights = area["const_mem_area"]
    if weights == "Sram" and len(set(area.values())) == 1:
        # Vela's Sram_Only: weights go to an on-chip flash with the SRAM's characteristics.
        sram = memories["Sram"]
        memories["OnChipFlash"] = Memory("OnChipFlash", *(
            getattr(sram, f) for f in Memory.__slots__ if f != "name"))
        weights = "OnChipFlash"
    for key, value, allowed in (("const_mem_area", weights, _WEIGHT_MEMORIES),
                                ("arena_mem_area", area["arena_mem_area"], _ARENA_MEMORIES),
                                ("cache_mem_area", area["cache_mem_area"], ("Sram",))):
        if value not in allowed:
            raise HardwareError(f"{source}: [{mode_name}] {key} maps to {value}; Vela "
                                f"allows {' or '.join(allowed)}")
    return Hardware(options, acc, clock, tuple(memories.values()), weights,
                    area["arena_mem_area"], area["cache_mem_area"], arena_cache,
                    hashlib.sha256(text.encode()).hexdigest())


@cache
def from_options(options: VelaOptions) -> Hardware:
    """The hardware Vela's bundled ini describes for these options (parsed once)."""
    path = config_path(options.config)
    try:
        text = path.read_text()
    except OSError as exc:
        raise HardwareError(f"cannot read Vela's config {path}: {exc.strerror}") from None
    return parse(text, options, source=str(path))


def hardware(target: str) -> Hardware:
    """The hardware of a registered Ethos-U target (``"ethos-u55-128"``), parsed once.

    Raises:
        UnknownTargetError: no target has that name.
        HardwareError: the target is not compiled by Vela, so it has no ini description.
    """
    from perfsage.targets.registry import target_class

    options = getattr(target_class(target), "options", None)
    if not isinstance(options, VelaOptions):
        raise HardwareError(f"target {target!r} is not an Ethos-U target compiled by Vela, "
                            "so Vela's ini does not describe it")
    return from_options(options)
