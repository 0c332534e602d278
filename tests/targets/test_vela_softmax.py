"""The SRAM of Vela's SOFTMAX lowering: the table against Vela, and the floor in predict."""

from __future__ import annotations

import numpy as np
import pytest

from perfsage.builder import ModelBuilder
from perfsage.graph import read_model
from perfsage.predictors.features import featurize
from perfsage.targets import get_target
from perfsage.targets.hardware import hardware
from perfsage.targets.vela_softmax import row_bytes, softmax_sram_bytes


def _softmax(shape: tuple[int, ...]) -> bytes:
    b = ModelBuilder(seed=0)
    return b.build([b.softmax(b.input((1, *shape)))])


@pytest.mark.vela
@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
@pytest.mark.parametrize("shape", [(32, 32, 1), (32, 32, 2), (16, 16, 5), (32, 32, 12),
                                   (32, 32, 21), (8, 8, 40), (100, 91), (64, 64, 2)])
def test_a_standalone_softmax_needs_what_the_table_says(target, shape):
    """Alone in a graph, a SOFTMAX's working set is the model's SRAM: Vela's summary agrees
    with the table to the byte, one class count from each of its rows (and two between
    the counts it was measured on). On Ethos-U85 the table is a floor from 33 classes up,
    and a working set beyond its SRAM is spilled: less, and no floor."""
    data = _softmax(shape)
    hw = hardware(target)
    family = hw.accelerator.family
    need = softmax_sram_bytes(featurize(read_model(data)), [True], family,
                              hw.arena_cache_bytes)
    table = int(np.prod(shape[:-1])) * row_bytes(shape[-1], family)
    measured = get_target(target).measure(data)["sram_kib"] * 1024
    if table <= hw.arena_cache_bytes and (family != "ethos-u85" or shape[-1] <= 32):
        assert need == table == measured
    elif table <= hw.arena_cache_bytes:  # Ethos-U85 from 33 classes: a floor
        assert need == table <= measured
    else:
        assert need == 0 and measured < table


def test_no_floor_where_the_lowering_differs():
    """A working set beyond the SRAM Vela may use is spilled, a CPU-run SOFTMAX needs no
    NPU SRAM, and other accelerators lower it their own way: no floor for any of them."""
    model = featurize(read_model(_softmax((64, 64, 2))))
    assert softmax_sram_bytes(model, [True], "ethos-u85", 384 * 1024) == 0  # spilled
    assert softmax_sram_bytes(model, [False], "ethos-u55") == 0
    assert softmax_sram_bytes(model, [True], "other") == 0
    assert softmax_sram_bytes(model, [True], "ethos-u55") == 4096 * row_bytes(2)


@pytest.mark.vela
def test_predict_raises_sram_to_the_softmax_working_set():
    """A dense-prediction head's SOFTMAX sets the SRAM peak; predict says at least that,
    with a note, and Vela measures the same."""
    import perfsage

    b = ModelBuilder(seed=0)
    x = b.conv2d(b.input((1, 64, 64, 8)), 16, 3, activation="relu")
    data = b.build([b.softmax(b.conv2d(x, 2, 1))])
    found = perfsage.predictions([data], target="ethos-u55-128")[0]
    need = 64 * 64 * row_bytes(2) / 1024
    assert found.figures["sram_kib"] == need
    assert "softmax-sram" in {n.kind for n in found.notes}
    lo, hi = found.interval["sram_kib"]
    assert lo <= need <= hi
    assert get_target("ethos-u55-128").measure(data)["sram_kib"] == need
