"""TFLite Micro's arena computed without TFLite Micro, checked against TFLite Micro itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from ai_edge_litert import schema_py_generated as fb

from helpers.tflite_edit import edit
from perfsage.builder import ModelBuilder
from perfsage.errors import MeasurementError, UsageError
from perfsage.graph import read_model
from perfsage.spaces import get_space, space_names
from perfsage.targets import MeasurePool
from perfsage.targets.tflm_planner import arena_bytes, plan_arena
from perfsage.targets.tflm_planner.greedy import planned_peak_bytes

EXAMPLES = Path(__file__).parents[2] / "examples" / "models"
PER_SPACE = 6  # int8 configs per space; the first one is also built in float32


# -- the greedy planner -------------------------------------------------------------------

def test_buffers_alive_at_different_times_share_memory():
    assert planned_peak_bytes([64, 64, 64], [0, 1, 2], [0, 1, 2]) == 64


def test_buffers_alive_together_are_stacked():
    assert planned_peak_bytes([64, 32, 16], [0, 0, 0], [2, 2, 2]) == 112


def test_a_small_buffer_fills_the_gap_below_a_placed_one():
    # 64 bytes at [0, 64) for step 0, then 48 alive at steps 0-1 above it: the 32 of step 1
    # fits below the 48, where the 64 was.
    assert planned_peak_bytes([64, 48, 32], [0, 0, 1], [0, 1, 1]) == 112


def test_equal_sizes_place_the_buffer_added_last_first():
    # TFLM fills its sort array from the back and bubble-sorts it (stable): of equal sizes
    # the buffer added later is placed first. Here that costs 128 bytes where the other
    # order would have needed 112: the replica must follow TFLM, not do better.
    assert planned_peak_bytes([32, 48, 32, 48], [1, 1, 1, 2], [1, 2, 1, 2]) == 128


def test_no_buffers_need_no_head():
    assert planned_peak_bytes([], [], []) == 0


# -- against TFLite Micro ----------------------------------------------------------------

def _space_models() -> dict[str, bytes]:
    models = {}
    for name in space_names():
        space = get_space(name)
        for i in range(PER_SPACE):
            config = space.sample_seeded(11, i)
            models[f"{name}/{i}/int8"] = space.build(config)
            if i == 0:
                models[f"{name}/{i}/float32"] = space.build(config, dtype="float32")
    return models


def _padding_models() -> dict[str, bytes]:
    """Small graphs whose tail padding depends on which kernel allocates first.

    DEPTH_TO_SPACE allocates in Prepare, after every Init; an unused tensor shifts the tail
    by 24 bytes, so both alignments of the first Init buffer are met.
    """
    models = {}
    for unused in (0, 1):
        b = ModelBuilder(seed=0)
        x, y = b.input((1, 8, 8, 8)), b.input((1, 3))
        data = b.build([b.depth_to_space(x), b.relu(y)])
        models[f"d2s+relu/{unused}"] = _with_unused_tensors(data, unused)
    return models


def _variable_models() -> dict[str, bytes]:
    """ADD of an input and a variable tensor: TFLM keeps the variable in the tail."""
    models = {}
    for shape in ((1, 4, 4, 8), (1, 3, 5, 7)):  # 105 bytes: the variable's padding counts
        b = ModelBuilder(seed=0)
        x, y = b.input(shape), b.input(shape)
        data = b.build([b.add(x, y)])

        def change(model) -> None:
            sg = model.subgraphs[0]
            sg.tensors[sg.inputs[1]].isVariable = True
            sg.inputs = sg.inputs[:1]

        models[f"variable/{'x'.join(map(str, shape))}"] = edit(data, change)
    return models


def _with_unused_tensors(data: bytes, n: int) -> bytes:
    """``data`` with ``n`` int8 tensors no operator touches (TFLM still plans them)."""
    def change(model) -> None:
        for i in range(n):
            tensor = fb.TensorT()
            tensor.shape, tensor.type, tensor.name = [1, 4], fb.TensorType.INT8, f"unused{i}"
            model.subgraphs[0].tensors.append(tensor)
    return edit(data, change)


@pytest.fixture(scope="module")
def measured() -> dict[str, tuple[bytes, int | None]]:
    """Every model of these tests with TFLM's arena bytes (None where TFLM fails)."""
    models = _space_models() | _padding_models() | _variable_models()
    models |= {f"examples/{p.stem}": p.read_bytes() for p in sorted(EXAMPLES.glob("*.tflite"))}
    out = {}
    # Worker processes: TFLM aborts the process on some models (a softmax input scale
    # near zero), which must not take the test run with it.
    with MeasurePool(["cortex-m-tflm"], workers=2, timeout_s=120) as pool:
        for result in pool.imap_unordered(models.items()):
            arena = round(result.metrics["arena_kib"] * 1024) if result.ok else None
            out[result.key] = (models[result.key], arena)
    return out


@pytest.mark.tflm
@pytest.mark.parametrize("space", space_names())
def test_exact_on_every_space(measured, space):
    rows = {k: v for k, v in measured.items() if k.startswith(f"{space}/")}
    allocated = {k: arena for k, (_, arena) in rows.items() if arena is not None}
    assert len(allocated) >= PER_SPACE - 2, f"TFLM failed on most {space} models"
    computed = {k: arena_bytes(rows[k][0]) for k in allocated}
    assert computed == allocated


@pytest.mark.tflm
def test_exact_on_the_example_models(measured):
    rows = {k: v for k, v in measured.items() if k.startswith("examples/")}
    allocated = {k: arena for k, (_, arena) in rows.items() if arena is not None}
    assert len(allocated) >= 3
    assert {k: arena_bytes(rows[k][0]) for k in allocated} == allocated


@pytest.mark.tflm
@pytest.mark.parametrize("group", ["d2s+relu", "variable"])
def test_exact_on_padding_and_variable_cases(measured, group):
    rows = {k: v for k, v in measured.items() if k.startswith(f"{group}/")}
    assert len(rows) == 2
    assert {k: arena_bytes(data) for k, (data, _) in rows.items()} == \
        {k: arena for k, (_, arena) in rows.items()}


# -- the interface ------------------------------------------------------------------------

def _small_model() -> bytes:
    b = ModelBuilder(seed=0)
    x = b.input((1, 8, 8, 3))
    return b.build([b.mean(b.conv2d(x, 4, activation="relu"))])


def test_bytes_and_ir_give_the_same_arena():
    data = _small_model()
    plan = plan_arena(read_model(data))
    assert arena_bytes(data) == plan.total_bytes == plan.head_bytes + plan.tail_bytes
    assert plan.head_bytes > 0 and plan.tail_bytes > 0


def test_an_ir_read_without_quantisation_is_refused():
    with pytest.raises(UsageError, match="details=True"):
        arena_bytes(read_model(_small_model(), details=False))


def test_an_operator_without_a_rule_is_refused():
    b = ModelBuilder(seed=0)
    x = b.input((1, 4, 8))
    with pytest.raises(MeasurementError, match="GELU"):
        arena_bytes(b.build([b.gelu(x)]))


def test_a_transpose_tflm_refuses_is_refused():
    b = ModelBuilder(seed=0)
    x = b.input((1, 2, 2, 2, 2, 2))
    with pytest.raises(MeasurementError, match="TRANSPOSE takes 1 to 5"):
        arena_bytes(b.build([b.transpose(x, (0, 1, 2, 3, 5, 4))]))


def test_a_model_with_several_subgraphs_is_refused():
    def add_subgraph(model) -> None:
        model.subgraphs.append(model.subgraphs[0])

    with pytest.raises(MeasurementError, match="2 subgraphs"):
        arena_bytes(edit(_small_model(), add_subgraph))
