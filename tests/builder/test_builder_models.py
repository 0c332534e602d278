"""Whole models: MobileNetV2 at full size, random networks, determinism and bad arguments."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import builder_checks as checks
import nets
import numpy as np
import pytest
import random_nets

from perfsage.builder import ModelBuilder
from perfsage.errors import UsageError
from perfsage.graph import analyze, read_model

HERE = Path(__file__).parent


@pytest.mark.slow
def test_mobilenet_v2_valid_everywhere(tmp_path) -> None:
    data = nets.mobilenet_v2()
    cost = analyze(read_model(data))
    assert 3.4e6 < cost.params < 3.6e6 and len(cost.layers) == 65
    assert len(checks.xnnpack_partitions(data)) == 1, "XNNPACK refused part of the model"
    inputs = checks.random_inputs(data)
    out = checks.litert(data, inputs)
    scales = [t.quantization.scale[0] for t in read_model(data).main.tensors
              if t.dtype == "int8" and not t.is_constant]
    assert min(scales) > 1e-3, "an activation scale collapsed"
    checks.assert_tflm_matches(data, inputs, out)
    float_data = nets.mobilenet_v2(dtype="float32")
    real = checks.litert(float_data, checks.random_inputs(float_data))
    q = checks.dequantized(out, data)[0]
    assert np.corrcoef(q.ravel(), real[0].ravel())[0, 1] > 0.5, "int8 drifted from float"
    assert np.unique(out[0]).size > 5
    result = checks.vela(data, tmp_path)
    assert result.cpu_operators == 0, result.reasons


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_random_networks_valid_everywhere(seed: int, tmp_path) -> None:
    """Random networks run alike in LiteRT and TFLM; Vela rejects only what it never runs."""
    data = random_nets.random_net(seed, cpu_layers=seed % 3 == 0)
    inputs = checks.random_inputs(data, seed)
    out = checks.litert(data, inputs)
    # Deep random networks amplify XNNPACK's different rounding (their float versions turn
    # a 0.2 % input change into several %), so without reference kernels compare loosely.
    checks.assert_tflm_matches(data, inputs, out, tolerance=32)
    result = checks.vela(data, tmp_path)
    cpu_only = ("DEPTH_TO_SPACE", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")
    assert all(r.startswith(cpu_only) for r in result.reasons), result.reasons
    if seed % 3:
        assert result.cpu_operators == 0


def _small(seed: int, dtype: str = "int8") -> bytes:
    b = ModelBuilder(seed=seed, dtype=dtype)
    x = b.input((1, 24, 24, 3))
    x = b.conv2d(x, 16, 3, stride=2, activation="relu6")
    y = b.depthwise_conv2d(x, 3, activation="relu")
    x = b.concat([b.add(x, y), b.max_pool(x, 3, stride=1, padding="same")])
    g = b.logistic(b.conv2d(b.mean(x, (1, 2)), 32, 1))
    x = b.mul(x, g)
    x = b.hard_swish(b.resize(x, (24, 24), method="bilinear"))
    return b.build([b.softmax(b.dense(b.mean(x, (1, 2), keepdims=False), 10))])


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_same_seed_same_bytes(dtype: str) -> None:
    assert _small(7, dtype) == _small(7, dtype)
    assert _small(7, dtype) != _small(8, dtype)


def test_build_twice_same_bytes() -> None:
    b = ModelBuilder(seed=3)
    x = b.conv2d(b.input((1, 8, 8, 2)), 4, 3)
    assert b.build([x]) == b.build([x])


def _digest() -> str:
    h = hashlib.sha256(_small(5))
    for seed in range(4):
        h.update(random_nets.random_net(seed, "int8", cpu_layers=True))
        h.update(random_nets.random_net(seed, "float32"))
    return h.hexdigest()


def test_bytes_independent_of_process_and_simd() -> None:
    """Byte-identical in a fresh process with another hash seed and without NumPy's SIMD
    extensions: as on a machine with other CPU features, where NumPy's exp and tanh
    differ in the last bits (the builder snaps what reaches the file).
    """
    from numpy._core._multiarray_umath import __cpu_dispatch__

    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); "
            "import test_builder_models as t; print(t._digest())")
    env = dict(os.environ, PYTHONHASHSEED="123", OPENBLAS_NUM_THREADS="1",
               NPY_DISABLE_CPU_FEATURES=" ".join(__cpu_dispatch__))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, cwd=HERE)
    assert proc.stdout.strip() == _digest()


#: SHA-256 of ``_small(5)``. A change here changes every generated dataset: update it only
#: for a deliberate change to what the builder writes (or a NumPy whose random streams moved).
GOLDEN = {"int8": "853e539f4e52797a390fcd082695a4dd50df16926fbc738e46c73144102b8c98",
          "float32": "42f2965b7e16ecf44477fd96fb434f3b7a8e9162e3acb06b5f278a5dd8ce72a6"}


@pytest.mark.parametrize("dtype", list(GOLDEN))
def test_bytes_match_golden_digest(dtype: str) -> None:
    assert hashlib.sha256(_small(5, dtype)).hexdigest() == GOLDEN[dtype]


def test_unused_layers_are_pruned() -> None:
    b = ModelBuilder()
    x = b.input((1, 8, 8, 4))
    b.conv2d(x, 8, 3)  # no output depends on it
    y = b.relu(x)
    model = read_model(b.build([y]))
    assert [op.opcode for op in model.main.operators] == ["RELU"]
    assert not any(t.is_constant for t in model.main.tensors)


def test_several_inputs_and_outputs() -> None:
    b = ModelBuilder()
    x, z = b.input((1, 8, 8, 4)), b.input((1, 8, 8, 4))
    s = b.add(x, z)
    data = b.build([s, b.relu(s)])
    model = read_model(data)
    assert len(model.inputs) == 2 and len(model.outputs) == 2
    outs = checks.litert(data, checks.random_inputs(data))
    assert [o.shape for o in outs] == [(1, 8, 8, 4)] * 2


def test_numpy_scalars_accepted() -> None:
    """Search spaces draw sizes and names with NumPy: its ints and strings are welcome."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input(np.array([1, 8, 8, 3]))
    x = b.conv2d(x, np.int64(8), kernel=rng.choice([3]), padding=rng.choice(["same"]),
                 activation=rng.choice(["relu6"]))
    x = b.reshape(b.mean(x, np.array([1, 2])), (np.int32(1), -1))
    assert read_model(b.build([x])).main.tensors[-1].shape == (1, 8)


def _input(b, shape=(1, 8, 8, 4)):
    return b.input(shape)


BAD = {
    "dtype": (lambda b: ModelBuilder(dtype="int16"), "dtype"),
    "batch": (lambda b: b.input((2, 8, 8, 3)), "batch"),
    "kernel larger than input": (lambda b: b.conv2d(_input(b), 4, 9, padding="valid"), "larger"),
    "dilated kernel larger": (lambda b: b.depthwise_conv2d(_input(b), 3, padding="valid",
                                                           dilation=4), "larger"),
    "activation": (lambda b: b.conv2d(_input(b), 4, activation="gelu"), "activation"),
    "padding": (lambda b: b.max_pool(_input(b), padding="full"), "padding"),
    "filters": (lambda b: b.conv2d(_input(b), 0), "filters"),
    "kernel pair": (lambda b: b.conv2d(_input(b), 4, kernel=(3, 3, 3)), "kernel"),
    "dense on a feature map": (lambda b: b.dense(_input(b), 10), "rank-2"),
    "add shapes": (lambda b: b.add(_input(b), _input(b, (1, 4, 4, 4))), "broadcast"),
    "concat shapes": (lambda b: b.concat([_input(b), _input(b, (1, 4, 8, 4))]), "differ"),
    "concat axis": (lambda b: b.concat([_input(b)], axis=4), "axis"),
    "reshape size": (lambda b: b.reshape(_input(b), (1, 100)), "reshape"),
    "pad pairs": (lambda b: b.pad(_input(b), ((1, 1),)), "paddings"),
    "resize method": (lambda b: b.resize(_input(b), (16, 16), method="cubic"), "method"),
    "depth to space": (lambda b: b.depth_to_space(_input(b, (1, 8, 8, 6)), 2), "divisible"),
    "mean axes": (lambda b: b.mean(_input(b), (1, 1)), "repeat"),
    "foreign tensor": (lambda b: b.relu(ModelBuilder().input((1, 4))), "TensorRef"),
    "no outputs": (lambda b: b.build([]), "outputs"),
    "input as output": (lambda b: b.build([_input(b)]), "input"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_arguments_raise_usage_error(name: str) -> None:
    call, words = BAD[name]
    with pytest.raises(UsageError, match=words):
        call(ModelBuilder())
