"""The Cortex-M target: TFLite Micro's recorded arena and the model's flash size."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfsage.errors import MeasurementError
from perfsage.graph import read_model
from perfsage.targets import get_target
from perfsage.targets.tflm import parse_arena_bytes

FIXTURES = Path(__file__).parent / "fixtures"


def test_parses_saved_print_allocations_output():
    # Written by TFLM's RecordingMicroAllocator for zoo("dense") (int8).
    text = (FIXTURES / "dense_tflm_allocations.txt").read_text()
    assert parse_arena_bytes(text) == 1744


def test_output_without_the_total_line_is_an_error():
    with pytest.raises(MeasurementError, match="Arena allocation total"):
        parse_arena_bytes("[RecordingMicroAllocator] Arena allocation head 64 bytes")


@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.parametrize("name", ["convnet", "dense", "conv8", "conv16", "conv32"])
def test_arena_holds_the_largest_activation(tflite_models, name):
    model_bytes = tflite_models[name]
    figures = get_target("cortex-m-tflm").measure(model_bytes)
    main = read_model(model_bytes).main
    largest = max(t.nbytes for t in main.tensors if not t.is_constant)
    assert figures["arena_kib"] * 1024 >= largest
    assert figures["flash_kib"] == len(model_bytes) / 1024


@pytest.mark.slow
@pytest.mark.tensorflow
def test_arena_grows_with_width(tflite_models):
    target = get_target("cortex-m-tflm")
    arenas = [target.measure(tflite_models[f"conv{w}"])["arena_kib"] for w in (8, 16, 32)]
    assert arenas == sorted(arenas) and arenas[0] < arenas[-1]


@pytest.mark.slow
@pytest.mark.tensorflow
def test_arena_limit_too_small_is_a_measurement_error(tflite_models):
    with pytest.raises(MeasurementError, match="cortex-m-tflm: TFLM failed"):
        get_target("cortex-m-tflm", arena_limit_bytes=1024).measure(tflite_models["convnet"])


def test_corrupt_model_is_a_measurement_error():
    with pytest.raises(MeasurementError, match="TFLM failed"):
        get_target("cortex-m-tflm").measure(b"\x18\x00\x00\x00TFL3" + b"\xff" * 64)
