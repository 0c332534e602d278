"""The host-CPU target (LiteRT + XNNPACK) and the latency statistics behind it."""

from __future__ import annotations

import pytest

from perfsage.errors import MeasurementError
from perfsage.graph import read_model
from perfsage.targets import get_target
from perfsage.targets.timing import stable_round, summarize

# Small counts keep the shared 2-core machine free; production uses runs=50.
QUICK = {"runs": 10, "warmup": 2, "max_rounds": 2}


def test_summarize_gives_median_percentiles_and_cv():
    stats = summarize([0.001] * 8 + [0.002, 0.010])
    assert stats.median_ms == pytest.approx(1.0)
    assert stats.p10_ms == pytest.approx(1.0)
    assert stats.p90_ms == pytest.approx(2.8)
    assert stats.cv > 1.0
    assert stats.runs == 10
    assert stats.spread == pytest.approx(1.8)


def test_a_stable_first_round_is_kept():
    rounds = iter([[0.001] * 10, [0.005] * 10])
    stats, done = stable_round(lambda: next(rounds), max_spread=0.25, max_rounds=3)
    assert done == 1 and stats.median_ms == pytest.approx(1.0)


def test_a_wide_round_is_measured_again_and_the_narrowest_kept():
    noisy = [0.001] * 5 + [0.003] * 5
    rounds = iter([noisy, [0.002] * 9 + [0.0021], noisy])
    stats, done = stable_round(lambda: next(rounds), max_spread=0.25, max_rounds=3)
    assert done == 2 and stats.median_ms == pytest.approx(2.0)


def test_rounds_are_bounded():
    noisy = [0.001] * 5 + [0.003] * 5
    stats, done = stable_round(lambda: noisy, max_spread=0.01, max_rounds=3)
    assert done == 3 and stats.spread > 0.01


def test_timing_options_are_checked():
    with pytest.raises(ValueError):
        get_target("cpu-litert", runs=0)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_measures_latency_and_memory(tflite_models):
    target = get_target("cpu-litert", **QUICK)
    figures = target.measure(tflite_models["convnet"])
    assert set(figures) == set(target.metrics)
    assert 0 < figures["latency_p10_ms"] <= figures["latency_ms"] <= figures["latency_p90_ms"]
    assert figures["latency_ms"] < 1000
    assert figures["latency_cv"] >= 0
    # The heap the interpreter holds covers at least its largest activation tensor.
    main = read_model(tflite_models["convnet"]).main
    assert figures["arena_kib"] * 1024 >= max(t.nbytes for t in main.tensors
                                              if not t.is_constant)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_arena_is_charged_to_the_model_not_to_litert_set_up(tflite_models):
    target = get_target("cpu-litert", **QUICK)
    first = target.measure(tflite_models["dense"])["arena_kib"]
    again = target.measure(tflite_models["dense"])["arena_kib"]
    assert first == pytest.approx(again, rel=0.2)


def test_corrupt_model_is_a_measurement_error():
    with pytest.raises(MeasurementError, match="cpu-litert: LiteRT failed"):
        get_target("cpu-litert", **QUICK).measure(b"not a model at all")
