"""The Ethos-U targets run real Vela on converter-made models."""

from __future__ import annotations

import math
import os

import pytest

from perfsage.errors import MeasurementError
from perfsage.targets import get_target
from perfsage.targets.vela_run import run_vela, run_vela_cli
from perfsage.targets.vela_summary import parse_summary

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow]

ETHOS = ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"]


@pytest.mark.parametrize("name", ETHOS)
def test_figures_are_sane(tflite_models, name):
    target = get_target(name)
    for model in ("convnet", "dense"):
        figures = target.measure(tflite_models[model])
        assert set(figures) == set(target.metrics)
        assert all(math.isfinite(v) and v >= 0 for v in figures.values())
        assert figures["latency_ms"] > 0 and figures["npu_cycles"] > 0
        assert figures["energy_mj"] > 0
    # The op zoo has DEPTH_TO_SPACE (no Ethos-U55/U65 support): Vela leaves it to the CPU.
    assert target.measure(tflite_models["convnet"])["cpu_ops"] >= 1
    assert target.measure(tflite_models["dense"])["cpu_ops"] == 0


@pytest.mark.parametrize("name", ETHOS)
def test_latency_grows_with_width(tflite_models, name):
    target = get_target(name)
    runs = [target.measure(tflite_models[f"conv{w}"]) for w in (8, 16, 32)]
    for metric in ("latency_ms", "npu_cycles"):
        values = [r[metric] for r in runs]
        assert values == sorted(values) and values[0] < values[-1], (metric, values)
    # Energy follows DRAM traffic, which Vela's scheduling does not make monotonic in width
    # (on the U85 the width-8 net moves more DRAM bytes than the width-16 one); the widest
    # net still costs most.
    energies = [r["energy_mj"] for r in runs]
    assert energies[-1] == max(energies), energies


@pytest.mark.parametrize("name", ETHOS)
def test_in_process_figures_equal_the_vela_command_line(tflite_models, name):
    target = get_target(name)
    model = tflite_models["convnet"]
    inproc = run_vela(model, target.options)
    cli = run_vela_cli(model, target.options)
    assert inproc.summary_csv == cli.summary_csv
    assert (target.figures(parse_summary(inproc.summary_csv, inproc.console))
            == target.figures(parse_summary(cli.summary_csv, cli.console)))


def test_vela_output_is_silenced(tflite_models, capfd):
    get_target("ethos-u55-128").measure(tflite_models["convnet"])
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_vela_rejects_garbage_with_a_measurement_error():
    garbage = os.urandom(4096)
    with pytest.raises(MeasurementError, match="ethos-u55-128: Vela failed"):
        get_target("ethos-u55-128").measure(b"\x00" * 8 + garbage)


def test_a_failure_leaves_the_next_model_unharmed(tflite_models):
    target = get_target("ethos-u65-256")
    before = target.measure(tflite_models["dense"])
    with pytest.raises(MeasurementError):
        target.measure(b"\x00" * 64)
    assert target.measure(tflite_models["dense"]) == before
