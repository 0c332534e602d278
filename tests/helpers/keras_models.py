"""Reference models built with Keras and the TFLite converter (TensorFlow: test extra only).

One helper module for every test that needs a real converter-made model, as Vela keeps its
test graph builders in one place.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def tf():
    """TensorFlow, imported on first use so collecting tests stays fast."""
    import tensorflow

    return tensorflow


def keras():
    """Keras 3 as bundled with TensorFlow."""
    import keras as k

    return k


def convert(model, *, int8: bool = True, seed: int = 0, samples: int = 4) -> bytes:
    """Convert a Keras model to TFLite; int8 uses full-integer post-training quantisation."""
    converter = tf().lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(seed)
        shape = [1, *model.input_shape[1:]]

        def representative():
            for _ in range(samples):
                yield [rng.uniform(-1, 1, shape).astype(np.float32)]

        converter.optimizations = [tf().lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf().int8
        converter.inference_output_type = tf().int8
    return converter.convert()


def single_layer(layer, input_shape: tuple[int, ...], *, batch: int | None = 1):
    """A model with one input and one layer, batch fixed to 1 unless told otherwise."""
    k = keras()
    inp = k.Input(shape=input_shape, batch_size=batch)
    return k.Model(inp, layer(inp))


def zoo(name: str):
    """Small Keras models covering the operator vocabulary the reader must handle."""
    k = keras()
    L = k.layers
    k.utils.set_random_seed(0)
    if name == "convnet":
        inp = k.Input((32, 32, 3), batch_size=1)
        x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(inp)
        y = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = L.Add()([x, y])
        x = L.Multiply()([x, L.Conv2D(16, 1)(x)])
        a = L.MaxPooling2D(2)(x)
        b = L.AveragePooling2D(2)(x)
        x = L.Concatenate()([a, b])
        x = L.Conv2DTranspose(8, 3, strides=2, padding="same")(x)
        x = L.UpSampling2D(2, interpolation="bilinear")(x)
        x = L.Conv2D(12, 3, padding="same")(x)
        x = L.Lambda(lambda t: tf().nn.depth_to_space(t, 2))(x)
        x = L.Activation("hard_swish")(x)
        x = L.Reshape((-1, 3))(x)
        x = L.Lambda(lambda t: tf().reduce_mean(t, axis=1))(x)
        x = L.Dense(10)(x)
        out = L.Softmax()(x)
        return k.Model(inp, out)
    if name == "dense":
        inp = k.Input((20,), batch_size=1)
        x = L.Dense(32, activation="relu")(inp)
        return k.Model(inp, L.Dense(5, activation="softmax")(x))
    raise KeyError(name)
