"""The reader against the converter's own view of the same models, read back by LiteRT."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

from helpers import keras_models
from helpers.tflite_edit import edit
from perfsage.graph import read_model

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

REQUIRED_OPS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "CONCATENATION",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "TRANSPOSE_CONV", "RESIZE_BILINEAR",
    "DEPTH_TO_SPACE", "HARD_SWISH", "SOFTMAX", "RESHAPE",
}


MODES = ["int8", "uint8-io", "float16", "float32"]


@pytest.fixture(scope="module", params=MODES)
def convnet(request, converted):
    return converted(f"convnet-{request.param}", lambda: keras_models.zoo("convnet"),
                     quantize=request.param)


CASES = [("convnet", m) for m in MODES] + [("small-conv", "int16x8")]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: "-".join(p))
def reference(request, converted):
    name, mode = request.param
    return converted(f"{name}-{mode}", lambda: keras_models.zoo(name), quantize=mode)


def test_ir_matches_litert_view(reference):
    model = read_model(reference)
    interp = Interpreter(model_path=str(reference))
    ops = interp._get_ops_details()
    main = model.main
    assert [op.name for op in main.operators] == [o["op_name"] for o in ops]
    for op, ref in zip(main.operators, ops, strict=True):
        assert list(op.inputs) == ref["inputs"].tolist()
        assert list(op.outputs) == ref["outputs"].tolist()
    details = interp.get_tensor_details()
    assert len(main.tensors) == len(details)
    for ref in details:
        t = main.tensors[ref["index"]]
        assert t.name == ref["name"]
        assert list(t.shape) == ref["shape"].tolist()
        assert np.dtype(t.dtype) == np.dtype(ref["dtype"])
        q = ref["quantization_parameters"]
        if len(q["scales"]):
            assert t.quantization is not None
            np.testing.assert_array_equal(np.float32(t.quantization.scale), q["scales"])
            assert list(t.quantization.zero_point) == q["zero_points"].tolist()
            if t.quantization.per_channel:
                assert t.quantization.axis == q["quantized_dimension"]
        else:
            assert t.quantization is None
    assert [t.index for t in model.inputs] == [d["index"] for d in interp.get_input_details()]
    assert [t.index for t in model.outputs] == [d["index"] for d in interp.get_output_details()]


def test_covers_the_required_operators(convnet):
    names = {op.name for op in read_model(convnet).main.operators}
    assert REQUIRED_OPS <= names


def test_dtypes_of_each_quantisation_mode(converted):
    dtypes = {}
    for name, mode in CASES:
        path = converted(f"{name}-{mode}", lambda n=name: keras_models.zoo(n), quantize=mode)
        model = read_model(path)
        dtypes[mode] = {t.dtype for t in model.main.tensors}
        conv = next(op for op in model.main.operators if op.opcode == "CONV_2D")
        weights = conv.inputs[1]
        producer = model.main.producers.get(weights)
        if producer is not None:  # float16 weights reach the conv through a DEQUANTIZE
            assert model.main.operators[producer].opcode == "DEQUANTIZE"
            weights = model.main.operators[producer].inputs[0]
        dtypes[mode + "-conv-weights"] = model.main.tensors[weights].dtype
    assert read_model(converted("convnet-float32", None)).inputs[0].dtype == "float32"
    assert dtypes["int8-conv-weights"] == "int8"
    assert "uint8" in dtypes["uint8-io"]
    assert "int16" in dtypes["int16x8"]
    assert dtypes["float16-conv-weights"] == "float16"
    assert dtypes["float32"] <= {"float32", "int32"}


def test_operator_options_are_named_fields(converted):
    model = read_model(converted("convnet-int8", lambda: keras_models.zoo("convnet")))
    ops = model.main.operators
    conv = ops[0]
    assert conv.opcode == "CONV_2D"
    assert conv.options["stride_w"] == conv.options["stride_h"] == 2
    assert conv.options["padding"] == "SAME"
    assert conv.fused_activation == "RELU6"
    depthwise = ops[1]
    assert depthwise.options["depth_multiplier"] == 1
    assert depthwise.fused_activation == "RELU"
    pool = next(op for op in ops if op.opcode == "MAX_POOL_2D")
    assert (pool.options["filter_width"], pool.options["filter_height"]) == (2, 2)
    d2s = next(op for op in ops if op.opcode == "DEPTH_TO_SPACE")
    assert d2s.options["block_size"] == 2


def test_edges_link_producers_to_consumers(converted):
    main = read_model(converted("convnet-int8", lambda: keras_models.zoo("convnet"))).main
    # The residual ADD (op 2) reads the outputs of the first conv and of the depthwise conv.
    add = main.operators[2]
    assert add.opcode == "ADD"
    assert {e.producer for e in main.edges if e.consumer == 2} == {0, 1}
    assert main.consumers[main.operators[0].outputs[0]][:2] == [1, 2]
    for edge in main.edges:
        assert edge.tensor in main.operators[edge.producer].outputs
        assert edge.tensor in main.operators[edge.consumer].inputs


def test_dynamic_batch_keeps_the_signature(converted):
    model = read_model(converted("dynamic", lambda: keras_models.zoo("dynamic-batch")))
    x = model.inputs[0]
    assert x.shape == (1, 8, 8, 3)
    assert x.shape_signature == (-1, 8, 8, 3)
    assert x.has_dynamic_shape
    assert x.num_elements == 8 * 8 * 3


def test_every_subgraph_of_a_while_loop(converted):
    path = converted("while", keras_models.while_loop_function, quantize="float32")
    model = read_model(path)
    assert len(model.subgraphs) == 3
    while_op = next(op for op in model.main.operators if op.opcode == "WHILE")
    assert set(while_op.called_subgraphs) == {1, 2}
    assert {op.opcode for op in model.subgraphs[2].operators} >= {"ADD", "MUL"}
    assert {op.opcode for op in model.subgraphs[1].operators} == {"LESS"}


def test_custom_operator_is_kept_by_name(converted):
    data = converted("convnet-int8", lambda: keras_models.zoo("convnet")).read_bytes()

    def make_hard_swish_custom(m: fb.ModelT) -> None:
        for code in m.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.HARD_SWISH:
                code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
                code.customCode = "MyHardSwish"

    model = read_model(edit(data, make_hard_swish_custom))
    custom = [op for op in model.main.operators if op.opcode == "CUSTOM"]
    assert len(custom) == 1
    assert custom[0].name == custom[0].custom_code == "MyHardSwish"


def test_every_builtin_of_the_schema_is_named():
    from perfsage.graph.schema import BUILTIN_OPERATORS

    names = {k for k in vars(fb.BuiltinOperator) if not k.startswith("_")}
    assert set(BUILTIN_OPERATORS.values()) == names
    assert len(names) > 200


def test_unknown_future_builtin_keeps_its_code(converted):
    data = converted("convnet-int8", lambda: keras_models.zoo("convnet")).read_bytes()

    def renumber(m: fb.ModelT) -> None:
        m.operatorCodes[0].builtinCode = 9999

    model = read_model(edit(data, renumber))
    assert "UNKNOWN_BUILTIN_9999" in {op.opcode for op in model.main.operators}


def _edge_cases():
    """Options at the edges of what the consistency checks allow, all valid."""
    k = keras_models.keras()
    L = k.layers
    k.utils.set_random_seed(0)
    inp = k.Input((23, 17, 6), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="valid")(inp)  # odd sizes, VALID, stride 2
    x = L.Conv2D(8, 3, padding="same", dilation_rate=2)(x)
    x = L.Conv2D(8, (5, 3), padding="valid", dilation_rate=(2, 1))(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    x = L.Conv2D(16, 3, padding="same", groups=4)(x)
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)
    x = L.Conv2DTranspose(6, 3, strides=2, padding="valid")(x)
    x = L.Conv2DTranspose(6, 4, strides=3, padding="same")(x)
    x = L.AveragePooling2D(3, strides=1, padding="valid")(x)
    x = L.Dense(7)(x)  # over the last axis of a 4-D tensor: keep_num_dims
    x = L.Flatten()(x)
    return k.Model(inp, L.Dense(3)(x))


@pytest.mark.parametrize("mode", ["int8", "float32"])
def test_valid_edge_cases_pass_the_consistency_checks(converted, mode):
    path = converted(f"edge-cases-{mode}", _edge_cases, quantize=mode)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()  # LiteRT prepares every operator: the model is valid
    ops = read_model(path).main.operators
    options = {(op.opcode, op.options.get("padding")) for op in ops}
    assert {("CONV_2D", "VALID"), ("CONV_2D", "SAME"), ("DEPTHWISE_CONV_2D", "SAME"),
            ("MAX_POOL_2D", "SAME"), ("TRANSPOSE_CONV", "VALID"), ("TRANSPOSE_CONV", "SAME"),
            ("AVERAGE_POOL_2D", "VALID")} <= options
    assert any(op.options.get("dilation_h_factor") == 2 for op in ops)
    assert any(op.options.get("depth_multiplier") == 2 for op in ops)
    assert any(op.options.get("keep_num_dims") for op in ops)


def test_import_is_light():
    # How long it takes is measured by benchmarks/, not asserted here.
    import subprocess
    import sys

    code = ("import sys; import perfsage.graph; "
            "print(any(m in sys.modules for m in ('tensorflow', 'torch', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"]


def test_option_names_follow_the_schema():
    from perfsage.graph.schema import field_name

    assert field_name("dilationWFactor") == "dilation_w_factor"
    assert field_name("strideH") == "stride_h"
    assert field_name("fusedActivationFunction") == "fused_activation_function"
    assert field_name("halfPixelCenters") == "half_pixel_centers"
