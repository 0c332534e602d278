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


def convert(model, *, quantize: str = "int8", seed: int = 0, samples: int = 4) -> bytes:
    """Convert a Keras model (or a concrete function) to TFLite bytes.

    ``quantize`` is one of "int8" (full-integer, int8 in and out), "uint8-io" (int8 inside,
    uint8 in and out), "int16x8" (16-bit activations, 8-bit weights), "float16" (float16
    weights) or "float32" (no quantisation).
    """
    t = tf()
    if hasattr(model, "input_shape"):
        converter = t.lite.TFLiteConverter.from_keras_model(model)
        shape = [1, *model.input_shape[1:]]
    else:
        converter = t.lite.TFLiteConverter.from_concrete_functions([model])
        shape = [1, *model.inputs[0].shape[1:]]
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(samples):
            yield [rng.uniform(-1, 1, shape).astype(np.float32)]

    if quantize in ("int8", "uint8-io", "int16x8"):
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
    if quantize in ("int8", "uint8-io"):
        converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = t.int8 if quantize == "int8" else t.uint8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    elif quantize == "int16x8":
        converter.target_spec.supported_ops = [
            t.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        converter.inference_input_type = t.int16
        converter.inference_output_type = t.int16
    elif quantize == "float16":
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [t.float16]
    elif quantize != "float32":
        raise ValueError(f"unknown quantize mode {quantize!r}")
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
    if name == "small-conv":  # only ops that every quantisation mode supports
        inp = k.Input((16, 16, 3), batch_size=1)
        x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
        x = L.Add()([x, L.DepthwiseConv2D(3, padding="same")(x)])
        x = L.AveragePooling2D(2)(x)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(4, activation="softmax")(x))
    if name == "dense":
        inp = k.Input((20,), batch_size=1)
        x = L.Dense(32, activation="relu")(inp)
        return k.Model(inp, L.Dense(5, activation="softmax")(x))
    if name == "dynamic-batch":
        inp = k.Input((8, 8, 3))  # batch left as None: -1 in the shape signature
        x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
        return k.Model(inp, L.GlobalAveragePooling2D()(x))
    raise KeyError(name)


def while_loop_function():
    """A concrete function with a tf.while_loop: converts to WHILE with two subgraphs."""
    t = tf()

    @t.function(input_signature=[t.TensorSpec([1, 4], t.float32)])
    def loop(x):
        def cond(i, v):
            return i < 3

        def body(i, v):
            return i + 1, v * 2.0 + 1.0

        return t.while_loop(cond, body, [t.constant(0), x])[1]

    return loop.get_concrete_function()
