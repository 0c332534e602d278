"""MAC, parameter and byte counts against hand-computed values."""

from __future__ import annotations

import pytest

from helpers import keras_models
from perfsage.graph import analyze, read_model

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]


def _single(converted, name, layer_factory, input_shape, **kw):
    def make():
        return keras_models.single_layer(layer_factory(), input_shape)

    return analyze(read_model(converted(name, make, **kw)))


def _layer(cost, op):
    (layer,) = [la for la in cost.layers if la.op == op]
    return layer


def L():
    return keras_models.keras().layers


@pytest.mark.parametrize(
    ("name", "factory", "shape", "op", "macs", "params"),
    [
        # 16x16 output, 8 filters, 3x3 kernel over 4 channels; weights 8*3*3*4 + 8 bias.
        ("conv", lambda: L().Conv2D(8, 3, padding="same"), (16, 16, 4), "CONV_2D",
         16 * 16 * 8 * 3 * 3 * 4, 8 * 3 * 3 * 4 + 8),
        # stride 2, valid: output 7x7.
        ("conv-s2", lambda: L().Conv2D(6, 3, strides=2), (16, 16, 4), "CONV_2D",
         7 * 7 * 6 * 3 * 3 * 4, 6 * 3 * 3 * 4 + 6),
        ("depthwise", lambda: L().DepthwiseConv2D(3, padding="same"), (16, 16, 8),
         "DEPTHWISE_CONV_2D", 16 * 16 * 8 * 3 * 3, 8 * 3 * 3 + 8),
        ("dense", lambda: L().Dense(32, bias_initializer="random_normal"), (20,),
         "FULLY_CONNECTED", 20 * 32, 20 * 32 + 32),
        # Each of the 8x8x4 input values scatters into a 3x3x6 window.
        ("tconv", lambda: L().Conv2DTranspose(6, 3, strides=2, padding="same", use_bias=False),
         (8, 8, 4), "TRANSPOSE_CONV", 8 * 8 * 4 * 3 * 3 * 6, None),
        ("maxpool", lambda: L().MaxPooling2D(2), (16, 16, 8), "MAX_POOL_2D",
         8 * 8 * 8 * 2 * 2, 0),
        ("avgpool", lambda: L().AveragePooling2D(3, strides=1), (10, 10, 4),
         "AVERAGE_POOL_2D", 8 * 8 * 4 * 3 * 3, 0),
        ("gap", lambda: L().GlobalAveragePooling2D(), (7, 7, 16), "MEAN", 7 * 7 * 16, None),
        ("softmax", lambda: L().Softmax(), (10,), "SOFTMAX", 3 * 10, 0),
        ("bilinear", lambda: L().UpSampling2D(2, interpolation="bilinear"), (4, 4, 3),
         "RESIZE_BILINEAR", 4 * 8 * 8 * 3, None),
        ("nearest", lambda: L().Lambda(
            lambda t: keras_models.tf().image.resize(t, (8, 8), method="nearest")),
         (4, 4, 3), "RESIZE_NEAREST_NEIGHBOR", 0, None),
        ("hardswish", lambda: L().Activation("hard_swish"), (4, 4, 3), "HARD_SWISH", 48, 0),
    ],
)
def test_single_layer_macs_and_params(converted, name, factory, shape, op, macs, params):
    cost = _single(converted, f"single-{name}", factory, shape)
    layer = _layer(cost, op)
    assert layer.macs == macs
    if params is not None:
        assert layer.params == params


def test_batch_matmul_macs(converted):
    k = keras_models.keras()
    tf = keras_models.tf()

    def make():
        a = k.Input((4, 5), batch_size=1)
        b = k.Input((5, 6), batch_size=1)
        return k.Model([a, b], k.layers.Lambda(lambda ab: tf.linalg.matmul(*ab))([a, b]))

    # Two inputs: convert in float (the int8 helper feeds one representative input).
    cost = analyze(read_model(converted("matmul", make, quantize="float32")))
    assert _layer(cost, "BATCH_MATMUL").macs == 4 * 6 * 5


def test_bytes_and_peak_of_a_chain(converted):
    k = keras_models.keras()

    def make():
        inp = k.Input((16, 16, 3), batch_size=1)
        x = k.layers.Conv2D(8, 3, padding="same")(inp)
        return k.Model(inp, k.layers.Conv2D(4, 1)(x))

    cost = analyze(read_model(converted("chain", make)))
    first, second = cost.layers
    assert (first.input_bytes, first.output_bytes) == (16 * 16 * 3, 16 * 16 * 8)
    assert (second.input_bytes, second.output_bytes) == (16 * 16 * 8, 16 * 16 * 4)
    # int8: peak is the larger of (input + hidden) and (hidden + output).
    assert cost.peak_activation_bytes == 16 * 16 * max(3 + 8, 8 + 4)
    # Per-channel int8 weights, int32 biases.
    assert first.param_bytes == 8 * 3 * 3 * 3 + 8 * 4
    assert cost.params == first.params + second.params


def test_mobilenet_v2_matches_published_macs(converted):
    """Sandler et al. (CVPR 2018), Table 4: MobileNetV2 1.0 at 224x224 costs 300M MACs."""

    def make():
        return keras_models.keras().applications.MobileNetV2(
            weights=None, alpha=1.0, input_shape=(224, 224, 3))

    cost = analyze(read_model(converted("mobilenet-v2", make, samples=1)))
    assert cost.macs == pytest.approx(300e6, rel=0.01)
    assert cost.params == pytest.approx(3.5e6, rel=0.02)  # 3.4M published; biases included
    assert cost.ops_by_type["CONV_2D"] == 35
