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
    assert str(found.value).startswith(f"{broken}: Keras could not convert it")
    assert "\n" not in str(found.value)


@pytest.mark.vela
def test_keras_file_through_predict_inspect_and_measure(saved):
    for command in (["inspect"], ["predict", "-t", "ethos-u55-128"],
                    ["measure", "-t", "ethos-u55-128"]):
        proc = perfsage(command[0], str(saved / "net.keras"), *command[1:], "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)
