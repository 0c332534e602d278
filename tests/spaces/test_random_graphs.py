"""The coverage space: every layer kind appears, shapes are what the builder makes, limits hold."""

from __future__ import annotations

import math
from collections import Counter

from perfsage.graph import analyze, read_model
from perfsage.spaces import get_space
from perfsage.spaces.random_graphs import MAX_ELEMENTS, STEPS, output_shape


def _samples(n: int) -> list[dict]:
    space = get_space("random-graphs")
    return [space.sample_seeded(11, i) for i in range(n)]


def test_recorded_shapes_match_the_built_model():
    space = get_space("random-graphs")
    for config in _samples(25):
        shapes = [(1, *config["input"])]
        for layer in config["layers"]:
            shapes.append(output_shape(layer, shapes))
        model = read_model(space.build(config))
        built = {tuple(t.shape) for t in model.main.tensors}
        # Every 4-D activation the sampler planned exists in the model, limits included.
        for shape in shapes:
            if len(shape) == 4 and shape != (1, 1, 1, shape[3]):
                assert shape in built, (shape, config)
        assert max(math.prod(s) for s in shapes) <= MAX_ELEMENTS
        assert analyze(model).macs > 0


def test_every_step_kind_and_operator_appears():
    ops: Counter = Counter()
    space = get_space("random-graphs")
    for config in _samples(150):
        ops.update(op.opcode for op in read_model(space.build(config)).main.operators)
    expected = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
                "PAD", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "DEPTH_TO_SPACE", "ADD",
                "MUL", "CONCATENATION", "LOGISTIC", "HARD_SWISH", "RELU", "RELU6",
                "FULLY_CONNECTED", "SOFTMAX", "RESHAPE"}
    assert expected <= set(ops), expected - set(ops)
    assert len(STEPS) == 12


def test_non_square_kernels_and_thin_inputs_are_drawn():
    configs = _samples(150)
    kernels = [tuple(la["kernel"]) for c in configs for la in c["layers"] if "kernel" in la]
    assert any(k[0] != k[1] for k in kernels)
    assert any(c["input"][2] == 1 for c in configs)
    assert any(c["input"][0] != c["input"][1] for c in configs)
