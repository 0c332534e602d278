"""``perfsage measure`` and ``perfsage targets`` as a user runs them."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers.processes import perfsage


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("perfsage: error: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


def test_corrupt_model_file_is_one_clean_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x18\x00\x00\x00TFL3" + b"\xff" * 200)
    line = _one_error_line(perfsage("measure", str(bad), "--target", "ethos-u55-128"))
    assert str(bad) in line


def test_missing_model_file_is_one_clean_line(tmp_path):
    line = _one_error_line(perfsage("measure", str(tmp_path / "none.tflite"), "-t",
                                     "cortex-m-tflm"))
    assert "no such file" in line


def test_unknown_target_is_one_clean_line(tmp_path):
    line = _one_error_line(perfsage("measure", str(tmp_path / "m.tflite"), "-t", "tpu"))
    assert line == ("perfsage: error: unknown target 'tpu'; choose from: ethos-u55-128, "
                    "ethos-u65-256, ethos-u85-256, cpu-litert, cortex-m-tflm")


def test_no_target_is_one_clean_line(tmp_path):
    line = _one_error_line(perfsage("measure", str(tmp_path / "m.tflite")))
    assert "--target" in line


def test_targets_lists_metrics_units_and_settings():
    proc = perfsage("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert list(listed) == ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256", "cpu-litert",
                            "cortex-m-tflm"]
    assert listed["ethos-u55-128"]["metrics"]["latency_ms"]["unit"] == "ms"
    assert listed["cortex-m-tflm"]["settings"]["tool"] == "tflite-micro"
    assert len(listed["cpu-litert"]["settings_hash"]) == 64
    table = perfsage("targets")
    assert table.returncode == 0 and "energy_mj" in table.stdout and "settings:" in table.stdout


@pytest.mark.slow
@pytest.mark.tensorflow
def test_measure_prints_json_and_tables(tflite_models, tmp_path):
    path = tmp_path / "dense.tflite"
    path.write_bytes(tflite_models["dense"])
    proc = perfsage("measure", str(path), "-t", "ethos-u55-128", "-t", "cortex-m-tflm",
                     "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["targets"]["ethos-u55-128"]["units"]["energy_mj"] == "mJ"
    results = {r["target"]: r for r in report["results"]}
    assert results["ethos-u55-128"]["status"] == "ok"
    assert results["ethos-u55-128"]["metrics"]["latency_ms"] > 0
    assert results["cortex-m-tflm"]["metrics"]["flash_kib"] == path.stat().st_size / 1024
    table = perfsage("measure", str(path), "-t", "ethos-u85-256")
    assert table.returncode == 0, table.stderr
    assert "latency_ms" in table.stdout and "dram_kib" in table.stdout and "KiB" in table.stdout
