"""The zoo space: every family builds what it claims, runs in LiteRT, Vela and TFLite Micro."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from helpers.litert_run import outputs_on_random_input
from perfsage.graph import analyze, read_model
from perfsage.spaces import COVERAGE_SPACES, get_space
from perfsage.spaces.zoo import FAMILIES, MAX_MACS, MAX_MODEL_BYTES, WEIGHTS

#: Operators that make each family what it is (the structure the task spaces lack).
SIGNATURE = {
    "keras_cnn": {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"},
    "preact_resnet": {"MUL", "ADD", "CONV_2D"},
    "densenet": {"CONCATENATION", "MUL", "ADD", "AVERAGE_POOL_2D"},
    "inception": {"CONCATENATION", "CONV_2D"},
    "resnext": {"CONV_2D", "ADD"},
    "shufflenet": {"SPLIT", "TRANSPOSE", "RESHAPE", "CONCATENATION"},
    "mobilenet_v3": {"HARD_SWISH", "MUL", "ADD"},
    "efficientnet_v2": {"LOGISTIC", "MUL", "CONV_2D"},
    "vit": {"BATCH_MATMUL", "SOFTMAX", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "NEG",
            "DEQUANTIZE", "QUANTIZE", "TRANSPOSE", "FULLY_CONNECTED"},
    "mobilevit": {"BATCH_MATMUL", "SOFTMAX", "TRANSPOSE", "RSQRT", "CONCATENATION"},
    "unet": {"CONCATENATION", "MAX_POOL_2D"},
    "ssd": {"RESHAPE", "CONV_2D"},
    "rnn": {"UNPACK", "SPLIT", "FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL"},
    "tcn": {"PAD", "CONV_2D", "ADD", "MEAN"},
}


def _config(family: str, index: int, max_side: int = 64) -> dict:
    """A seeded config of one family, its input capped at ``max_side`` to keep tests fast."""
    rng = np.random.default_rng([99, index, list(FAMILIES).index(family)])
    config = {"family": family, **FAMILIES[family][0](rng), "seed": index}
    if config.get("resolution", 0) > max_side:
        config["resolution"] = max_side
        if family == "vit":
            config["patch"] = 8
    return config


def test_registered_as_a_coverage_space_with_every_family_weighted():
    assert "zoo" in COVERAGE_SPACES
    assert get_space("zoo").name == "zoo"
    assert set(WEIGHTS) == set(FAMILIES) == set(SIGNATURE)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_builds_its_signature_operators(family):
    space = get_space("zoo")
    for index in range(2):
        config = _config(family, index)
        assert len(json.dumps(config)) < 4096
        data = space.build(config)
        assert space.build(config) == data  # a pure function of the config
        model = read_model(data)
        ops = {op.opcode for op in model.main.operators}
        assert SIGNATURE[family] <= ops, (family, SIGNATURE[family] - ops)
        assert analyze(model).macs > 0
        if family == "ssd":
            assert len(model.outputs) >= 2


@pytest.mark.parametrize(("family", "key", "values"), [
    ("ssd", "scores", {"logistic": "LOGISTIC", "softmax": "SOFTMAX"}),
    ("unet", "head", {"logits": None, "softmax": "SOFTMAX"})])
def test_dense_heads_end_in_the_drawn_score_layer(family, key, values):
    """SSD class scores and multi-class U-Net maps end in the drawn layer; a config drawn
    before the key existed builds as it did (SSD: logistic, U-Net: raw logits)."""
    space = get_space("zoo")
    config = {**_config(family, 0), "classes": 20, "outputs": "concat"}

    def last_ops(cfg: dict) -> set[str]:
        model = read_model(space.build(cfg))
        return {op.opcode for op in model.main.operators
                if any(t in model.main.outputs for t in op.outputs)}

    for value, opcode in values.items():
        ops = last_ops({**config, key: value})
        assert (opcode in ops) if opcode else not ops & {"SOFTMAX", "LOGISTIC"}
    old = {k: v for k, v in config.items() if k != key}
    assert last_ops(old) == last_ops({**config, key: next(iter(values))})


def test_unfoldable_batch_norm_and_rescaling_stay_mul_add():
    space = get_space("zoo")
    config = {**_config("keras_cnn", 0), "bn": "post", "preprocess": "normalize"}
    model = read_model(space.build(config))
    ops = [op.opcode for op in model.main.operators]
    assert ops[:2] == ["SUB", "MUL"]  # Normalization at the input
    convs = ops.count("CONV_2D")
    # Conv-ReLU-BN: every convolution is followed by MUL and ADD with per-channel constants.
    assert ops.count("MUL") >= convs + 1 and ops.count("ADD") >= convs
    rescaled = read_model(space.build({**config, "preprocess": "rescale"}))
    mul, add = rescaled.main.operators[:2]
    assert (mul.opcode, add.opcode) == ("MUL", "ADD")  # Rescaling at the input: one value each
    for op in (mul, add):
        constant = rescaled.main.tensors[op.inputs[1]]
        assert constant.shape in ((), (1,))
        assert rescaled.main.tensors[op.outputs[0]].shape == rescaled.inputs[0].shape


def test_sampled_models_respect_bounds_and_cover_weights_and_floats():
    space = get_space("zoo")
    configs = [space.sample_seeded(1, i) for i in range(16)]
    assert len(Counter(c["family"] for c in configs)) >= 8
    sizes = [len(space.build(c)) for c in configs]
    assert max(sizes) <= MAX_MODEL_BYTES
    assert sum(s >= 2**19 for s in sizes) >= 4  # many carry >= 0.5 MB of weights
    assert all(analyze(read_model(space.build(c))).macs <= MAX_MACS for c in configs[:4])
    assert configs[13].get("dtype") == "float32"  # one in twenty is a float model


@pytest.fixture(scope="module")
def tools():
    from perfsage.targets import get_target

    return get_target("ethos-u55-128"), get_target("cortex-m-tflm")


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_runs_in_litert_vela_and_tflm(family, tools):
    from perfsage.errors import MeasurementError

    vela, tflm = tools
    config = _config(family, 0, max_side=32)
    if family == "vit":
        config.update(depth=2, act="gelu_decomposed")
    if family == "mobilevit":
        config["act"] = "swish"
    data = get_space("zoo").build(config)
    outputs = outputs_on_random_input(data)
    assert all(np.isfinite(o.astype(np.float64)).all() for o in outputs)
    assert any(np.unique(o).size > 1 for o in outputs), "every output collapsed to one value"
    figures = vela.measure(data)
    assert figures["latency_ms"] > 0 and figures["sram_kib"] > 0
    try:
        assert tflm.measure(data)["arena_kib"] > 0
    except MeasurementError as exc:  # TFLite Micro has no GELU kernel: a tool's limit
        assert "GELU" in str(exc)


def test_tflm_lacks_gelu_and_reports_it(tools):
    from perfsage.errors import MeasurementError

    _, tflm = tools
    config = {**_config("vit", 1, max_side=32), "depth": 1, "act": "gelu"}
    with pytest.raises(MeasurementError, match="GELU"):
        tflm.measure(get_space("zoo").build(config))
