"""The same architecture built by ModelBuilder and by Keras + the TFLite converter.

Both must give the same operators (type, version, output shape, in order), the same
``min_runtime_version``, the same XNNPACK delegation and, on an Ethos-U55-128, Vela cycle
estimates within 2 %.
"""

from __future__ import annotations

import builder_checks as checks
import pytest

from helpers import keras_models
from perfsage.builder import ModelBuilder
from perfsage.graph import read_model
from perfsage.graph.schema import fb

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

BIAS = "random_normal"  # the converter drops all-zero dense biases; keep them


def _start(shape: tuple[int, ...]):
    """Keras, its layers, TensorFlow and a seeded batch-1 input of ``shape``."""
    k = keras_models.keras()
    k.utils.set_random_seed(0)
    return k, k.layers, keras_models.tf(), k.Input(shape, batch_size=1)


def keras_classifier():
    k, L, tf, inp = _start((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu6", bias_initializer=BIAS)(inp)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu", bias_initializer=BIAS)(x)
    x = L.AveragePooling2D(2)(L.Add()([x, y]))
    x = L.MaxPooling2D(2)(L.Conv2D(32, 1, activation="relu", bias_initializer=BIAS)(x))
    x = L.Dense(10, bias_initializer=BIAS)(L.Flatten()(x))
    return k.Model(inp, L.Softmax()(x))


def ours_classifier(dtype: str) -> bytes:
    b = ModelBuilder(seed=0, dtype=dtype)
    x = b.conv2d(b.input((1, 32, 32, 3)), 16, 3, stride=2, activation="relu6")
    y = b.depthwise_conv2d(x, 3, activation="relu")
    x = b.avg_pool(b.add(x, y), 2)
    x = b.max_pool(b.conv2d(x, 32, 1, activation="relu"), 2)
    x = b.dense(b.reshape(x, (1, -1)), 10)
    return b.build([b.softmax(x)])


def keras_inverted_residual_se():
    k, L, tf, inp = _start((16, 16, 16))
    h = L.Conv2D(96, 1, activation="relu6", bias_initializer=BIAS)(inp)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu6", bias_initializer=BIAS)(h)
    g = L.GlobalAveragePooling2D(keepdims=True)(h)
    g = L.Conv2D(24, 1, activation="relu", bias_initializer=BIAS)(g)
    g = L.Conv2D(96, 1, activation="sigmoid", bias_initializer=BIAS)(g)
    h = L.Conv2D(16, 1, bias_initializer=BIAS)(L.Multiply()([h, g]))
    return k.Model(inp, L.Add()([inp, h]))


def ours_inverted_residual_se(dtype: str) -> bytes:
    b = ModelBuilder(seed=0, dtype=dtype)
    inp = b.input((1, 16, 16, 16))
    h = b.conv2d(inp, 96, 1, activation="relu6")
    h = b.depthwise_conv2d(h, 3, activation="relu6")
    g = b.conv2d(b.mean(h, (1, 2)), 24, 1, activation="relu")
    g = b.logistic(b.conv2d(g, 96, 1))
    h = b.conv2d(b.mul(h, g), 16, 1)
    return b.build([b.add(inp, h)])


def keras_resampling():
    k, L, tf, inp = _start((24, 24, 8))
    x = L.Conv2D(16, 3, padding="same", activation="relu", bias_initializer=BIAS)(inp)
    x = L.Concatenate()([L.MaxPooling2D(2)(x), L.AveragePooling2D(2)(x)])
    x = L.UpSampling2D(2, interpolation="bilinear")(L.ZeroPadding2D(1)(x))
    x = L.Conv2D(16, 3, padding="valid", bias_initializer=BIAS)(x)
    x = L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(x)  # fused to HARD_SWISH
    x = L.Lambda(lambda t: tf.image.resize(t, (52, 52), method="nearest"))(x)
    x = L.Dense(10, bias_initializer=BIAS)(L.GlobalAveragePooling2D()(x))
    return k.Model(inp, L.Softmax()(x))


def ours_resampling(dtype: str) -> bytes:
    b = ModelBuilder(seed=0, dtype=dtype)
    x = b.conv2d(b.input((1, 24, 24, 8)), 16, 3, activation="relu")
    avg = b.avg_pool(x, 2)  # the converter writes this branch first
    x = b.concat([b.max_pool(x, 2), avg])
    x = b.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    x = b.resize(x, (28, 28), method="bilinear")
    x = b.hard_swish(b.conv2d(x, 16, 3, padding="valid"))
    x = b.resize(x, (52, 52), method="nearest")
    x = b.dense(b.mean(x, (1, 2), keepdims=False), 10)
    return b.build([b.softmax(x)])


def keras_standalone_activation():
    k, L, tf, inp = _start((16, 16, 8))
    x = L.DepthwiseConv2D(3, padding="same", dilation_rate=2, activation="relu",
                          bias_initializer=BIAS)(L.ReLU(6.0)(inp))
    x = L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)
    return k.Model(inp, L.Conv2D(4, 1, bias_initializer=BIAS)(x))


def ours_standalone_activation(dtype: str) -> bytes:
    b = ModelBuilder(seed=0, dtype=dtype)
    x = b.relu6(b.input((1, 16, 16, 8)))
    x = b.depth_to_space(b.depthwise_conv2d(x, 3, dilation=2, activation="relu"), 2)
    return b.build([b.conv2d(x, 4, 1)])


ARCHS = {
    "classifier": (keras_classifier, ours_classifier),
    "inverted_residual_se": (keras_inverted_residual_se, ours_inverted_residual_se),
    "resampling": (keras_resampling, ours_resampling),
    # A RELU6 the converter cannot fuse, dilated depthwise (float version 2), DEPTH_TO_SPACE.
    "standalone_activation": (keras_standalone_activation, ours_standalone_activation),
}


def _operators(data: bytes) -> list[tuple[str, int, tuple[int, ...]]]:
    main = read_model(data).main
    return [(op.opcode, op.version, main.tensors[op.outputs[0]].shape) for op in main.operators]


def _runtime_version(data: bytes) -> bytes:
    m = fb.Model.GetRootAs(data, 0)
    for i in range(m.MetadataLength()):
        if m.Metadata(i).Name() == b"min_runtime_version":
            return m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes().rstrip(b"\0")
    return b""


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", list(ARCHS))
def test_same_operators_as_converter(converted, name: str, dtype: str) -> None:
    make_keras, ours = ARCHS[name]
    theirs = converted(f"builder-{name}-{dtype}", make_keras, quantize=dtype).read_bytes()
    mine = ours(dtype)
    assert _operators(mine) == _operators(theirs)
    assert _runtime_version(mine) == _runtime_version(theirs)
    assert read_model(mine).signatures == read_model(theirs).signatures
    # XNNPACK takes over the same parts of both: no operator refused for its quantisation.
    assert checks.xnnpack_partitions(mine) == checks.xnnpack_partitions(theirs)


@pytest.mark.parametrize("name", list(ARCHS))
def test_vela_cycles_match_converter(converted, name: str, tmp_path) -> None:
    make_keras, ours = ARCHS[name]
    theirs = checks.vela(converted(f"builder-{name}-int8", make_keras, quantize="int8")
                         .read_bytes(), tmp_path, "keras")
    mine = checks.vela(ours("int8"), tmp_path, "builder")
    assert mine.cpu_operators == theirs.cpu_operators
    assert abs(mine.cycles - theirs.cycles) <= 0.02 * theirs.cycles, (mine.cycles, theirs.cycles)
