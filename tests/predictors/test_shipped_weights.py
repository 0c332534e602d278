"""The weights that ship in the package: present, intact, and accurate on unseen models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perfsage.predictors.shipped import load_model, shipped_targets

SHIPPED = ["cortex-m-tflm", "ethos-u55-128", "ethos-u65-256", "ethos-u85-256"]
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def test_weights_ship_for_the_four_targets():
    assert shipped_targets() == SHIPPED


@pytest.mark.parametrize("target", SHIPPED)
def test_shipped_weights_load_and_predict_every_metric(target):
    import perfsage
    from perfsage.targets import target_class

    model = load_model(target)
    assert model.target == target
    assert set(model.metrics) == set(target_class(target).metrics)
    for row in perfsage.predict_many(EXAMPLES, target=target):
        assert all(np.isfinite(v) and v >= 0 for v in row.values())


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ethos-u55-128", "cortex-m-tflm"])
def test_shipped_weights_track_the_real_tool_on_fresh_models(target):
    """Models from a seed the training set never used, measured by the real tool."""
    import perfsage
    from perfsage.spaces import get_space, space_names
    from perfsage.targets import get_target

    tool = get_target(target)
    errors = []
    for space in space_names():
        s = get_space(space)
        for idx in range(3):
            config = s.sample_seeded(424242, idx)
            for key in ("resolution", "height", "width"):  # keep the tool fast
                if key in config:
                    config[key] = min(config[key], 128)
            data = s.build(config)
            measured = tool.measure(data)
            predicted = perfsage.predict(data, target=target)
            metric = "latency_ms" if "latency_ms" in measured else "arena_kib"
            errors.append(abs(predicted[metric] / measured[metric] - 1))
    assert np.median(errors) < 0.15, sorted(errors)


def test_predict_cli_uses_shipped_weights():
    result = subprocess.run([sys.executable, "-m", "perfsage", "predict", str(EXAMPLES[0]),
                             "--target", "ethos-u55-128"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "latency_ms" in result.stdout and "(ms)" in result.stdout
    unknown = subprocess.run([sys.executable, "-m", "perfsage", "predict", str(EXAMPLES[0]),
                              "--target", "cpu-litert"], capture_output=True, text=True,
                             timeout=60)
    assert unknown.returncode == 2
    assert "no PerfSAGE weights ship for target 'cpu-litert'" in unknown.stderr


def test_predict_warns_outside_the_training_data():
    float_model = next(p for p in EXAMPLES if "float32" in p.name)
    result = subprocess.run([sys.executable, "-m", "perfsage", "predict", str(float_model),
                             "--target", "ethos-u55-128"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    # The op zoo holds TRANSPOSE_CONV, which no training space has; and a float model
    # gets its own note (Vela leaves float operators on the CPU).
    assert "operator types never trained on: TRANSPOSE_CONV" in result.stderr
    assert "float model" in result.stderr
    int8_kws = next(p for p in EXAMPLES if "kws" in p.name)
    quiet = subprocess.run([sys.executable, "-m", "perfsage", "predict", str(int8_kws),
                            "--target", "ethos-u55-128"], capture_output=True, text=True,
                           timeout=60)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_sram_stops_at_the_memory_the_target_bounds_it_to():
    """Ethos-U85's 384 KiB SRAM cache: Vela never uses more; nor may a figure or interval."""
    import perfsage
    from perfsage.pipeline import Pipeline
    from perfsage.spaces import get_space
    from perfsage.targets import target_class

    space = get_space("zoo")
    data = space.build(space.sample_seeded(7, 1))  # large feature maps: past what it trained on
    pipeline = Pipeline("ethos-u85-256")
    network = float(pipeline.columns([pipeline.read(data)[1]])["sram_kib"][0])
    assert network > 0.9 * pipeline.sram_cap_kib  # near the cap: its interval reaches past it
    found = perfsage.predictions([data], target="ethos-u85-256", level=0.9)[0]
    measured = target_class("ethos-u85-256")().measure(data)["sram_kib"]
    assert found.figures["sram_kib"] == min(network, pipeline.sram_cap_kib)
    assert pipeline.sram_cap_kib == 384
    assert found.interval["sram_kib"][1] <= 384 and measured <= 384
