"""The Vela summary parser and the energy model, on output saved from a real Vela 5.2.0 run.

Fixtures: ``fixtures/convnet_<target>_summary.csv`` and ``..._console.txt``, written by
``run_vela`` for ``zoo("convnet")`` (int8) with each target's options.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perfsage.errors import MeasurementError
from perfsage.targets import energy, get_target
from perfsage.targets.vela_summary import MemoryTraffic, parse_summary

FIXTURES = Path(__file__).parent / "fixtures"


def _saved(target: str) -> tuple[str, str]:
    stem = FIXTURES / f"convnet_{target}"
    return (stem.with_name(stem.name + "_summary.csv").read_text(),
            stem.with_name(stem.name + "_console.txt").read_text())


def test_parses_every_figure_of_a_u55_summary():
    s = parse_summary(*_saved("ethos-u55-128"))
    assert (s.accelerator, s.system_config, s.memory_mode) == (
        "Ethos_U55_128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
    assert s.core_clock_hz == 500e6
    assert s.inference_time_s == pytest.approx(0.000254246)
    assert (s.npu_cycles, s.total_cycles, s.macs) == (126670, 127123, 1845970)
    assert s.total_cycles / s.core_clock_hz == pytest.approx(s.inference_time_s)
    assert s.memory_used_kib == {"sram": 28.046875, "dram": 0.0, "on_chip_flash": 0.0,
                                 "off_chip_flash": 11.140625}
    assert s.traffic["sram"] == MemoryTraffic(193796, 98896, 21648, 9760, 328836)
    assert s.traffic["off_chip_flash"] == MemoryTraffic(528, 0, 9840, 0, 10736)
    assert s.traffic["off_chip_flash"].read == 10736 and s.traffic["sram"].write == 108656
    assert (s.cpu_ops, s.npu_ops) == (1, 50)


def test_u55_metrics_from_saved_summary():
    target = get_target("ethos-u55-128")
    figures = target.figures(parse_summary(*_saved("ethos-u55-128")))
    assert figures["latency_ms"] == pytest.approx(0.254246)
    assert figures["npu_cycles"] == 126670
    assert figures["sram_kib"] == 28.046875
    assert figures["flash_kib"] == 11.140625
    assert figures["cpu_ops"] == 1


def test_u65_summary_has_dram_and_no_flash():
    target = get_target("ethos-u65-256")
    figures = target.figures(parse_summary(*_saved("ethos-u65-256")))
    assert figures["dram_kib"] == 35.140625
    assert figures["flash_kib"] == 0.0
    assert figures["latency_ms"] == pytest.approx(0.128845)


def test_energy_is_the_documented_formula():
    s = parse_summary(*_saved("ethos-u65-256"))
    e = energy.estimate(s, energy.ETHOS_U55_U65)
    mac_pj = 0.2 + 0.1  # Horowitz: 8-bit multiply + 32-bit add
    sram_pj, dram_pj = 100 / 8, 1950 / 8  # Horowitz: 1 MB SRAM, DRAM midpoint; per byte
    expected = s.macs * mac_pj + 268800 * sram_pj + 188992 * dram_pj
    assert e.total_pj == pytest.approx(expected)
    assert e.total_mj == pytest.approx(expected * 1e-9)
    assert e.static_pj == 0.0  # no sourced static power: documented as zero
    u85 = energy.estimate(s, energy.ETHOS_U85)
    assert u85.compute_pj == pytest.approx(e.compute_pj / 1.2)


def test_every_energy_constant_has_a_source():
    for constant in (energy.INT8_MULT, energy.INT32_ADD, energy.SRAM_1MB_64BIT,
                     energy.DRAM_64BIT, energy.U85_EFFICIENCY_GAIN,
                     energy.STATIC_POWER_UNSOURCED):
        assert constant.source and constant.unit
    assert "Horowitz" in energy.INT8_MULT.source and "ISSCC 2014" in energy.DRAM_64BIT.source


def test_traffic_without_a_constant_is_refused():
    s = parse_summary(*_saved("ethos-u55-128"))
    traffic = dict(s.traffic, on_chip_flash=MemoryTraffic(10, 0, 0, 0, 10))
    odd = type(s)(**{**{f: getattr(s, f) for f in s.__slots__}, "traffic": traffic})
    with pytest.raises(MeasurementError, match="no energy constant for on_chip_flash"):
        energy.estimate(odd, energy.ETHOS_U55_U65)


def test_energy_constants_are_part_of_the_settings():
    settings = get_target("ethos-u55-128").settings["energy"]
    assert settings["mac_pj"] == pytest.approx(0.3)
    assert settings["byte_pj"]["dram"] == pytest.approx(243.75)


@pytest.mark.parametrize("csv_text", ["", "a,b\n1\n", "experiment,network\ndefault,m\n"])
def test_malformed_summary_is_a_measurement_error(csv_text):
    _, console = _saved("ethos-u55-128")
    with pytest.raises(MeasurementError):
        parse_summary(csv_text, console)


def test_summary_without_cpu_operator_line_is_an_error():
    csv_text, console = _saved("ethos-u55-128")
    with pytest.raises(MeasurementError, match="CPU operators"):
        parse_summary(csv_text, console.replace("CPU operators", "CPU ops"))


def test_non_numeric_column_is_an_error():
    csv_text, console = _saved("ethos-u55-128")
    with pytest.raises(MeasurementError, match="cycles_npu"):
        parse_summary(csv_text.replace(",126670,", ",n/a,"), console)
