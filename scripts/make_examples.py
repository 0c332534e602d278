"""Regenerate the example models in examples/models/ with Keras and the TFLite converter.

Run: .venv/bin/python scripts/make_examples.py   (needs the test extra: TensorFlow)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import keras_models  # noqa: E402


def ds_cnn():
    """DS-CNN-S keyword spotter (Zhang et al., 'Hello Edge', 2017) on 49x10 MFCCs."""
    k = keras_models.keras()
    L = k.layers
    inp = k.Input((49, 10, 1), batch_size=1)
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", activation="relu")(inp)
    for _ in range(4):
        x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return k.Model(inp, L.Dense(12, activation="softmax")(x))


def mobilenet_v2():
    return keras_models.keras().applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)


MODELS = {
    "mobilenet_v2_0.35_96_int8": (mobilenet_v2, "int8"),
    "ds_cnn_s_kws_int8": (ds_cnn, "int8"),
    "op_zoo_int8": (lambda: keras_models.zoo("convnet"), "int8"),
    "op_zoo_float32": (lambda: keras_models.zoo("convnet"), "float32"),
}


def main() -> None:
    out = ROOT / "examples" / "models"
    out.mkdir(parents=True, exist_ok=True)
    for name, (make, mode) in MODELS.items():
        keras_models.keras().utils.set_random_seed(0)
        path = out / f"{name}.tflite"
        path.write_bytes(keras_models.convert(make(), quantize=mode))
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
