"""Vela's CPU fallback computed from its checks equals what the real Vela reports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers.tflite_edit import edit
from perfsage.errors import MeasurementError, UnknownTargetError, UsageError
from perfsage.graph import read_model
from perfsage.graph.ir import Model, Operator, Quantization, Subgraph, Tensor
from perfsage.spaces import get_space
from perfsage.targets import get_target
from perfsage.targets.vela_run import run_vela
from perfsage.targets.vela_summary import parse_summary
from perfsage.targets.vela_support import (
    ETHOS_U_TARGETS,
    cpu_placement,
    cpu_placements,
    model_notes,
)

EXAMPLES = "examples/models"
_WARNING = re.compile(r"Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\n"
                      r"Reason: (.*)\n")

# (space, seed, index, dtype): DEPTH_TO_SPACE, resizes that U55/U65 refuse and U85 runs
# (scale 1/3, 3x, unequal H and W), float32 builds (all on the CPU, or refused for a float
# HARD_SWISH).
_SPACE_MODELS = [
    ("super-resolution", 7, 0, "int8"),
    ("random-graphs", 7, 12, "int8"),
    ("random-graphs", 7, 35, "int8"),
    ("random-graphs", 7, 46, "int8"),
    ("random-graphs", 7, 72, "int8"),
    ("random-graphs", 7, 1, "float32"),
    ("keyword-spotting", 7, 0, "float32"),
    ("image-classification", 7, 1, "float32"),
]


def _space_model(space: str, seed: int, index: int, dtype: str) -> bytes:
    sp = get_space(space)
    return sp.build(sp.sample_seeded(seed, index), dtype=dtype)


def _shuffle_and_norm_model(side: int) -> bytes:
    """A channel shuffle (a rank-5 TRANSPOSE) and a gain broadcast both ways (layer norm).

    At side 24 the shuffle's largest product of three axes (24 * 24 * 122) is over 2^16,
    so U55/U65 leave it on the CPU; at side 12 it runs on the NPU.
    """
    from perfsage.builder import ModelBuilder

    b = ModelBuilder(seed=0)
    x = b.input((1, side, side, 244))
    x = b.reshape(x, (1, side, side, 2, 122))
    x = b.transpose(x, (0, 1, 2, 4, 3))
    x = b.reshape(x, (1, side * side, 244))
    row = b.mean(x, axes=(2,), keepdims=True)  # (1, side*side, 1)
    y = b.mul_const(row, np.linspace(0.5, 1.5, 32))  # times a (1, 1, 32) gain
    return b.build([y])


def _heavy_weights_model() -> bytes:
    """A FULLY_CONNECTED whose weights (+-127 over 70,000 inputs) overflow Vela's weight sum."""
    from perfsage.builder import ModelBuilder

    b = ModelBuilder(seed=0)
    data = b.build([b.dense(b.input((1, 70000)), 4)])
    weights = read_model(data).main.tensors[read_model(data).main.operators[0].inputs[1]]

    def change(model):
        values = np.full(len(model.buffers[weights.buffer].data), 127, np.uint8)
        values[::2] = 0x81  # -127
        model.buffers[weights.buffer].data = values

    return edit(data, change)


def _custom_op_model() -> bytes:
    """The int8 op zoo with its DEPTH_TO_SPACE turned into a custom operator."""
    from ai_edge_litert import schema_py_generated as fb

    def change(model):
        code = fb.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        code.customCode = "MyCustomOp"
        model.operatorCodes.append(code)
        for op in model.subgraphs[0].operators:
            builtin = model.operatorCodes[op.opcodeIndex].builtinCode
            if builtin == fb.BuiltinOperator.DEPTH_TO_SPACE:
                op.opcodeIndex = len(model.operatorCodes) - 1
                op.builtinOptionsType, op.builtinOptions = 0, None

    with open(f"{EXAMPLES}/op_zoo_int8.tflite", "rb") as f:
        return edit(f.read(), change)


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    found = {}
    for name in ("ds_cnn_s_kws_int8", "op_zoo_int8", "op_zoo_float32"):
        with open(f"{EXAMPLES}/{name}.tflite", "rb") as f:
            found[name] = f.read()
    for space, seed, index, dtype in _SPACE_MODELS:
        found[f"{space}-{seed}-{index}-{dtype}"] = _space_model(space, seed, index, dtype)
    found["custom-op"] = _custom_op_model()
    found["heavy-weights"] = _heavy_weights_model()
    for side in (24, 12):
        found[f"shuffle-{side}"] = _shuffle_and_norm_model(side)
    return found


@pytest.mark.vela
@pytest.mark.parametrize("target", ETHOS_U_TARGETS)
def test_cpu_ops_and_reasons_equal_vela(models, target):
    options = get_target(target).options
    for name, data in models.items():
        placement = cpu_placement(read_model(data), target)
        try:
            out = run_vela(data, options, target=target)
        except MeasurementError as exc:
            assert placement.rejected is not None, f"{name}: Vela refused it: {exc}"
            assert "does not have valid TFLite semantics" in placement.rejected
            continue
        assert placement.rejected is None, name
        summary = parse_summary(out.summary_csv, out.console, target=target)
        assert placement.cpu_ops == summary.cpu_ops, name
        # Vela names each operator by its output and gives its check's message; the
        # tensor it names in a data-type message can differ (it splits fused activations).
        strip = re.compile(r" \(.*\)$")
        theirs = sorted((ofm, strip.sub("", why)) for _, ofm, why in
                        _WARNING.findall(out.console))
        ours = sorted((op.ofm, strip.sub("", op.reason)) for op in placement.operators)
        assert ours == theirs, name


def test_targets_differ_where_vela_differs(models):
    data = models["random-graphs-7-35-int8"]  # a 3x resize: U55/U65 refuse, U85 runs it
    placed = cpu_placements(data)
    assert [placed[t].cpu_ops for t in ETHOS_U_TARGETS] == [1, 1, 0]
    reason = placed["ethos-u55-128"].operators[0].reason
    assert reason == "Scaling matches and operation has unsupported scale-factor=3"


def test_shuffle_limit(models):
    wide = cpu_placements(models["shuffle-24"])
    assert [wide[t].cpu_ops for t in ETHOS_U_TARGETS] == [1, 1, 0]
    assert wide["ethos-u55-128"].operators[0].reason == (
        "Transpose with permutation 0, 1, 2, 4, 3 has shape out of range: 1, 24, 24, 2, 122")
    assert cpu_placement(models["shuffle-12"], "ethos-u55-128").cpu_ops == 0


@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.vela
def test_while_loop_bodies_count():
    """Vela counts the operators of a WHILE's condition and body too."""
    pytest.importorskip("tensorflow")
    from helpers.keras_models import convert, while_loop_function

    data = convert(while_loop_function(), quantize="float32")
    for target in ETHOS_U_TARGETS:
        out = run_vela(data, get_target(target).options, target=target)
        placement = cpu_placement(data, target)
        assert placement.cpu_ops == parse_summary(out.summary_csv, out.console).cpu_ops
        assert placement.cpu_ops == placement.total_ops == 5  # WHILE, LESS, the body's 3


def test_placement_accepts_bytes_and_paths(models):
    by_bytes = cpu_placement(models["op_zoo_int8"], "ethos-u55-128")
    by_path = cpu_placement(f"{EXAMPLES}/op_zoo_int8.tflite", "ethos-u55-128")
    assert by_bytes == by_path
    assert [op.opcode for op in by_path.operators] == ["DEPTH_TO_SPACE"]
    assert by_path.total_ops == 17 and not by_path.mostly_cpu
    data = json.loads(json.dumps(by_path.as_dict()))
    assert data["cpu_ops"] == 1 and data["operators"][0]["reason"] == "Unsupported opType"


def test_ir_without_details_is_refused(models):
    with pytest.raises(UsageError, match="details=True"):
        cpu_placement(read_model(models["op_zoo_int8"], details=False), "ethos-u55-128")


def test_non_vela_and_unknown_targets_are_refused(models):
    with pytest.raises(UsageError, match="not compiled by Vela"):
        cpu_placement(models["op_zoo_int8"], "cortex-m-tflm")
    with pytest.raises(UnknownTargetError):
        cpu_placement(models["op_zoo_int8"], "ethos-u99")


def test_notes_for_float_custom_and_cpu_models(models):
    assert model_notes(models["ds_cnn_s_kws_int8"], ETHOS_U_TARGETS) == []

    notes = model_notes(models["random-graphs-7-1-float32"], ["ethos-u55-128", "cortex-m-tflm"])
    assert [(n.kind, n.target) for n in notes] == [("float32", None),
                                                  ("mostly-cpu", "ethos-u55-128")]
    assert "quantise it to int8" in notes[0].message

    kinds = [n.kind for n in model_notes(models["op_zoo_float32"], ["ethos-u85-256"])]
    assert kinds == ["float32", "vela-rejects"]

    custom = model_notes(models["custom-op"], ["ethos-u65-256"])
    assert [n.kind for n in custom] == ["custom-ops", "cpu-ops"]
    assert "MyCustomOp" in custom[0].message and "MyCustomOp" in custom[1].message
    assert custom[1].as_dict()["target"] == "ethos-u65-256"


def _hybrid_fc() -> Model:
    """float32 in and out, int8 weights: what dynamic-range quantisation writes."""
    q = Quantization((0.02,), (0,))
    tensors = [
        Tensor(0, "x", (1, 16), "float32"),
        Tensor(1, "w", (4, 16), "int8", q, data=np.ones(64, np.uint8)),
        Tensor(2, "b", (4,), "float32", data=np.zeros(16, np.uint8)),
        Tensor(3, "y", (1, 4), "float32"),
    ]
    op = Operator(0, "FULLY_CONNECTED", (0, 1, 2), (3,), {"keep_num_dims": False})
    return Model([Subgraph(0, "main", tensors, [op], (0,), (3,))])


def _float16_fc() -> Model:
    """float16 weights dequantised at run time, as float16 post-training quantisation writes."""
    tensors = [
        Tensor(0, "x", (1, 16), "float32"),
        Tensor(1, "w16", (4, 16), "float16", data=np.zeros(128, np.uint8)),
        Tensor(2, "w", (4, 16), "float32"),
        Tensor(3, "y", (1, 4), "float32"),
    ]
    ops = [Operator(0, "DEQUANTIZE", (1,), (2,)),
           Operator(1, "FULLY_CONNECTED", (0, 2, -1), (3,), {"keep_num_dims": False})]
    return Model([Subgraph(0, "main", tensors, ops, (0,), (3,))])


def test_float16_model_is_a_float_model():
    notes = model_notes(_float16_fc(), ["ethos-u85-256"])
    assert [n.kind for n in notes] == ["float32", "mostly-cpu"]
    assert "float16 weights" in notes[0].message
    assert cpu_placement(_float16_fc(), "ethos-u85-256").cpu_ops == 2


def test_hybrid_model_is_named_so():
    notes = model_notes(_hybrid_fc(), ["ethos-u55-128"])
    assert [n.kind for n in notes] == ["hybrid", "mostly-cpu"]
    placement = cpu_placement(_hybrid_fc(), "ethos-u55-128")
    assert placement.operators[0].reason.startswith("Operation has tensor with unsupported "
                                                    "DataType Float32")
    assert placement.cpu_mac_share == 1.0


@pytest.mark.parametrize("arch", ["EthosU55", "EthosU65", "EthosU85"])
def test_the_written_operator_table_is_regors(arch):
    from perfsage.targets.vela_checks import SUPPORTED_OPERATORS, regor_operators

    assert SUPPORTED_OPERATORS[arch] == regor_operators(arch)
