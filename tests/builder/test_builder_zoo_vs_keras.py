"""The zoo's layer patterns built by ModelBuilder and by Keras + the TFLite converter.

Both must give the same operators (type, output shape, in order; versions too, except
MUL's, which depends on calibrated scales) and, on an Ethos-U55-128, the same operators on
the CPU and Vela cycle estimates within 2 %.
"""

from __future__ import annotations

import builder_checks as checks
import pytest

from helpers import keras_models
from perfsage.builder import ModelBuilder
from perfsage.graph import read_model

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

BIAS = "random_normal"  # the converter drops all-zero biases; keep them


def _start(shape: tuple[int, ...]):
    k = keras_models.keras()
    k.utils.set_random_seed(0)
    return k, k.layers, keras_models.tf(), k.Input(shape, batch_size=1)


def _bn(k):
    """A trained-looking BatchNormalization: per-channel gains, shifts and statistics."""
    spread = k.initializers.RandomUniform(0.5, 2.0)
    return k.layers.BatchNormalization(beta_initializer=BIAS, gamma_initializer=spread,
                                       moving_mean_initializer=BIAS,
                                       moving_variance_initializer=spread)


def keras_conv_relu_bn():
    k, L, tf, inp = _start((16, 16, 8))
    x = _bn(k)(L.Conv2D(16, 3, padding="same", activation="relu", bias_initializer=BIAS)(inp))
    return k.Model(inp, L.Conv2D(8, 3, padding="same", bias_initializer=BIAS)(x))


def ours_conv_relu_bn() -> bytes:
    b = ModelBuilder(seed=0)
    x = b.batch_norm(b.conv2d(b.input((1, 16, 16, 8)), 16, 3, activation="relu"))
    return b.build([b.conv2d(x, 8, 3)])


def keras_normalization():
    k, L, tf, inp = _start((16, 16, 3))
    x = L.Normalization(mean=[0.1, 0.0, -0.1], variance=[0.2, 0.3, 0.35])(inp)
    return k.Model(inp, L.Conv2D(8, 3, strides=2, padding="same", bias_initializer=BIAS)(x))


def ours_normalization() -> bytes:
    b = ModelBuilder(seed=0)
    x = b.sub_const(b.input((1, 16, 16, 3)), [0.1, 0.0, -0.1])
    x = b.mul_const(x, [0.2**-0.5, 0.3**-0.5, 0.35**-0.5])
    return b.build([b.conv2d(x, 8, 3, stride=2)])


def keras_se_hard_sigmoid():
    k, L, tf, inp = _start((8, 8, 32))
    g = L.GlobalAveragePooling2D(keepdims=True)(inp)
    g = L.Conv2D(8, 1, activation="relu", bias_initializer=BIAS)(g)
    g = L.Activation("hard_sigmoid")(L.Conv2D(32, 1, bias_initializer=BIAS)(g))
    return k.Model(inp, L.Multiply()([inp, g]))


def ours_se_hard_sigmoid() -> bytes:
    b = ModelBuilder(seed=0)
    inp = b.input((1, 8, 8, 32))
    g = b.conv2d(b.mean(inp, (1, 2)), 8, 1, activation="relu")
    g = b.mul_const(b.conv2d(g, 32, 1, activation="relu6", shift=3.0), 1 / 6)
    return b.build([b.mul(inp, g)])


def keras_layer_norm():
    k, L, tf, inp = _start((16, 32))
    return k.Model(inp, L.LayerNormalization(beta_initializer=BIAS,
                                             gamma_initializer=BIAS)(inp))


def ours_layer_norm() -> bytes:
    b = ModelBuilder(seed=0)
    return b.build([b.layer_norm(b.input((1, 16, 32)))])


def keras_grouped():
    k, L, tf, inp = _start((8, 8, 32))
    x = L.Conv2D(32, 3, groups=4, padding="same", activation="relu", bias_initializer=BIAS)(inp)
    return k.Model(inp, L.Conv2D(16, 1, bias_initializer=BIAS)(x))


def ours_grouped() -> bytes:
    b = ModelBuilder(seed=0)
    x = b.grouped_conv2d(b.input((1, 8, 8, 32)), 32, 4, activation="relu")
    return b.build([b.conv2d(x, 16, 1)])


def keras_shuffle_split():
    k, L, tf, inp = _start((8, 8, 32))
    a, c = L.Lambda(lambda t: tf.split(t, 2, axis=3))(inp)
    c = L.Conv2D(16, 1, activation="relu", bias_initializer=BIAS)(c)
    x = L.Concatenate()([a, c])
    x = L.Reshape((8, 8, 32))(L.Permute((1, 2, 4, 3))(L.Reshape((8, 8, 2, 16))(x)))
    return k.Model(inp, L.Conv2D(8, 1, bias_initializer=BIAS)(x))


def ours_shuffle_split() -> bytes:
    b = ModelBuilder(seed=0)
    a, c = b.split(b.input((1, 8, 8, 32)), 2, axis=3)
    x = b.concat([a, b.conv2d(c, 16, 1, activation="relu")])
    x = b.reshape(b.transpose(b.reshape(x, (1, 8, 8, 2, 16)), (0, 1, 2, 4, 3)), (1, 8, 8, 32))
    return b.build([b.conv2d(x, 8, 1)])


def keras_gelu():
    k, L, tf, inp = _start((8, 8, 16))
    x = L.Activation("gelu")(L.Conv2D(16, 1, bias_initializer=BIAS)(inp))
    return k.Model(inp, L.Conv2D(8, 1, bias_initializer=BIAS)(x))


def ours_gelu() -> bytes:
    b = ModelBuilder(seed=0)
    x = b.gelu(b.conv2d(b.input((1, 8, 8, 16)), 16, 1))
    return b.build([b.conv2d(x, 8, 1)])


def keras_attention():
    k, L, tf, inp = _start((16, 32))
    return k.Model(inp, L.MultiHeadAttention(2, 16, bias_initializer=BIAS)(inp, inp))


def ours_attention() -> bytes:
    from perfsage.spaces.zoo.attention import attention

    b = ModelBuilder(seed=0)
    return b.build([attention(b, b.input((1, 16, 32)), 2)])


KERAS_CNN = {"family": "keras_cnn", "resolution": 32, "classes": 10, "preprocess": "normalize",
             "stages": 3, "base": 16, "convs": [2, 1, 1], "bn": "post", "head": "flatten",
             "hidden": 128, "seed": 1}


def keras_keras_cnn():
    """The zoo's ``keras_cnn`` family member above, written in Keras."""
    import numpy as np

    k, L, tf, inp = _start((32, 32, 3))
    x = L.Normalization(mean=np.linspace(-0.1, 0.1, 3),
                        variance=np.linspace(0.45, 0.6, 3) ** 2)(inp)
    for i, n in enumerate(KERAS_CNN["convs"]):
        for _ in range(n):
            x = _bn(k)(L.Conv2D(16 * 2**i, 3, padding="same", activation="relu",
                                bias_initializer=BIAS)(x))
        x = L.MaxPooling2D(2)(x)
    x = L.Dense(128, activation="relu", bias_initializer=BIAS)(L.Flatten()(x))
    return k.Model(inp, L.Softmax()(L.Dense(10, bias_initializer=BIAS)(x)))


def ours_keras_cnn() -> bytes:
    from perfsage.spaces import get_space

    return get_space("zoo").build(KERAS_CNN)


ARCHS = {
    "conv_relu_bn": (keras_conv_relu_bn, ours_conv_relu_bn),
    "normalization": (keras_normalization, ours_normalization),
    "se_hard_sigmoid": (keras_se_hard_sigmoid, ours_se_hard_sigmoid),
    "layer_norm": (keras_layer_norm, ours_layer_norm),
    "grouped": (keras_grouped, ours_grouped),
    "shuffle_split": (keras_shuffle_split, ours_shuffle_split),
    "gelu": (keras_gelu, ours_gelu),
    "attention": (keras_attention, ours_attention),
    "keras_cnn": (keras_keras_cnn, ours_keras_cnn),  # a whole zoo model
}


def _operators(data: bytes) -> list[tuple]:
    main = read_model(data).main
    return [(op.opcode, None if op.opcode == "MUL" else op.version,
             main.tensors[op.outputs[0]].shape) for op in main.operators]


@pytest.mark.parametrize("name", list(ARCHS))
def test_same_operators_and_vela_cycles_as_converter(converted, name: str, tmp_path) -> None:
    make_keras, ours = ARCHS[name]
    theirs = converted(f"zoo-{name}", make_keras, quantize="int8").read_bytes()
    mine = ours()
    assert _operators(mine) == _operators(theirs)
    a, b = checks.vela(mine, tmp_path, "builder"), checks.vela(theirs, tmp_path, "keras")
    assert a.cpu_operators == b.cpu_operators
    assert abs(a.cycles - b.cycles) <= 0.02 * b.cycles, (a.cycles, b.cycles)
