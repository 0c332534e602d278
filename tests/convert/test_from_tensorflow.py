"""Keras files and SavedModel folders through TensorFlow's converter: full-integer int8 TFLite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.processes import perfsage
from perfsage.convert import as_tflite
from perfsage.errors import ConversionError
from perfsage.graph import read_model

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow]

keras = pytest.importorskip("keras")


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(16, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The same Keras model as .keras, .h5 and a SavedModel folder."""
    folder = tmp_path_factory.mktemp("keras")
    model = _model()
    model.save(folder / "net.keras")
    model.save(folder / "net.h5")
    model.export(str(folder / "saved"), format="tf_saved_model", verbose=False)
    return folder


def _dtypes(path) -> set[str]:
    model = read_model(path)
    sg = model.subgraphs[0]
    return {sg.tensors[t].dtype for op in sg.operators for t in op.outputs}


@pytest.mark.parametrize("name", ["net.keras", "net.h5", "saved"])
def test_keras_and_saved_model_become_full_integer(saved, name):
    path = as_tflite(saved / name)
    assert path.name == f"{name}.tflite"
    assert _dtypes(path) == {"int8"}
    assert read_model(path).inputs[0].shape == (1, 32, 32, 3)


def test_calibration_file_sets_the_input_range(saved, tmp_path):
    samples = tmp_path / "images.npy"
    np.save(samples, np.full((4, 32, 32, 3), 100.0, np.float32))
    own = read_model(as_tflite(saved / "net.keras", calibration=samples))
    default = read_model(as_tflite(saved / "net.keras"))
    assert own.inputs[0].quantization.scale[0] > 5 * default.inputs[0].quantization.scale[0]


def test_a_broken_keras_file_is_one_line(tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not a real archive")
    with pytest.raises(ConversionError) as found:
        as_tflite(broken)
    assert str(found.value).startswith(f"{broken}: Keras could not read it")
    assert "\n" not in str(found.value)


@pytest.mark.vela
def test_keras_file_through_predict_inspect_and_measure(saved):
    for command in (["inspect"], ["predict", "-t", "ethos-u55-128"],
                    ["measure", "-t", "ethos-u55-128"]):
        proc = perfsage(command[0], str(saved / "net.keras"), *command[1:], "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)


def test_float_tflite_is_requantized_on_request(tmp_path):
    from helpers import keras_models

    float_model = tmp_path / "float.tflite"
    float_model.write_bytes(keras_models.convert(_model(), quantize="float32"))
    assert as_tflite(float_model) == float_model
    int8 = as_tflite(float_model, quantize=True)
    assert int8 != float_model and int8.name == "float.tflite.tflite"
    assert _dtypes(int8) == {"int8"}
    assert as_tflite(int8, quantize=True) == int8  # already int8: as it is


def test_hybrid_tflite_cannot_be_requantized(tmp_path):
    from helpers import keras_models

    hybrid = tmp_path / "hybrid.tflite"
    tf = keras_models.tf()
    inputs = keras.Input((64,), batch_size=1)  # weights large enough to be quantised
    dense = keras.Model(inputs, keras.layers.Dense(64)(keras.layers.Dense(64)(inputs)))
    converter = tf.lite.TFLiteConverter.from_keras_model(dense)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no samples: dynamic-range
    hybrid.write_bytes(converter.convert())
    with pytest.raises(ConversionError, match="original float model"):
        as_tflite(hybrid, quantize=True)


def test_convert_command_requantizes_a_float_tflite(tmp_path):
    from helpers import keras_models

    float_model = tmp_path / "float.tflite"
    float_model.write_bytes(keras_models.convert(_model(), quantize="float32"))
    out = tmp_path / "int8.tflite"
    proc = perfsage("convert", str(float_model), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _dtypes(out) == {"int8"}
