"""Keras (``.keras``, ``.h5``) and SavedModel folders to int8 TFLite with TensorFlow's converter.

``tf.lite.TFLiteConverter`` is the converter these formats were made for, and the one
Arm's Vela documentation assumes: full-integer post-training quantisation
(``optimizations=[Optimize.DEFAULT]``, a ``representative_dataset``, ``TFLITE_BUILTINS_INT8``
operators only, int8 inputs and outputs), as in TensorFlow's "Post-training integer
quantization" guide. A model with an operator that has no int8 kernel fails to convert
rather than leaving float islands the NPU would hand back to the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

from perfsage.convert.calibration import InputSpec, fixed_shape, samples
from perfsage.convert.runner import converting, require

CONVERTER = "the TensorFlow Lite converter"

_WHAT = "converting Keras and SavedModel models"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow", _WHAT)


def _spec(name: str, tensor_spec) -> InputSpec:
    return InputSpec(name, fixed_shape(tensor_spec.shape.as_list()
                                       if hasattr(tensor_spec.shape, "as_list")
                                       else tensor_spec.shape),
                     tensor_spec.dtype.name if hasattr(tensor_spec.dtype, "name")
                     else str(tensor_spec.dtype))


def _int8(tf, converter, representative) -> bytes:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def from_keras(path: Path, given) -> bytes:
    """Convert a Keras model file (``.keras`` or legacy ``.h5``) to int8 TFLite bytes."""
    tf = _tf()
    keras = require("keras", _WHAT)
    with converting(path, "Keras", "read"):
        model = keras.models.load_model(str(path), compile=False)
        specs = [InputSpec(getattr(t, "name", f"input_{i}"), fixed_shape(t.shape),
                           str(getattr(t.dtype, "name", t.dtype)))
                 for i, t in enumerate(model.inputs)]
    calib = samples(specs, given)
    with converting(path, CONVERTER):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return _int8(tf, converter, lambda: iter(calib))


def from_saved_model(path: Path, given) -> bytes:
    """Convert a SavedModel folder (its ``serving_default`` signature) to int8 TFLite bytes."""
    tf = _tf()
    with converting(path, "tf.saved_model.load", "read"):
        loaded = tf.saved_model.load(str(path))
        if "serving_default" not in loaded.signatures:
            raise ValueError("the SavedModel has no 'serving_default' signature; save it with "
                             "one (tf.saved_model.save(..., signatures=...))")
        inputs = loaded.signatures["serving_default"].structured_input_signature[1]
        names = sorted(inputs)
        specs = [_spec(name, inputs[name]) for name in names]
    calib = samples(specs, given)
    with converting(path, CONVERTER):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
        return _int8(tf, converter,
                     lambda: (dict(zip(names, sample, strict=True)) for sample in calib))
