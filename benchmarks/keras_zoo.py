"""Real architectures as int8 TFLite files: Keras Applications through the official converter.

    .venv/bin/python benchmarks/keras_zoo.py [NAME ...]     # build (cached), print sizes

Models nobody here designed, for the benchmarks that must measure on real architectures
(speed in bench_cli_speed.py, accuracy in real_models.py). Weights are random (no download
reaches this machine) and the int8 calibration uses random inputs; Vela's and TFLite
Micro's figures depend on shapes, operators and weight bytes, not on trained values.
Built files are cached under out/keras-zoo by name. TensorFlow comes from the test extra.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "keras-zoo"
sys.path.insert(0, str(ROOT / "tests"))


def _app(name: str, shape: tuple[int, int, int], **kwargs) -> Callable:
    def make():
        import keras

        return getattr(keras.applications, name)(weights=None, input_shape=shape, **kwargs)

    return make


#: Model name -> (family, builder). Families group architectures for family-level splits.
MODELS: dict[str, tuple[str, Callable]] = {
    "mobilenet_v2_1.0_224": ("mobilenet-v2", _app("MobileNetV2", (224, 224, 3))),
    "efficientnet_b0_224": ("efficientnet", _app("EfficientNetB0", (224, 224, 3))),
}


def build(name: str) -> Path:
    """The int8 .tflite file of ``name``, converted once and cached."""
    path = CACHE / f"{name}.tflite"
    if not path.is_file():
        from helpers.keras_models import convert

        family, make = MODELS[name]
        CACHE.mkdir(parents=True, exist_ok=True)
        data = convert(make(), quantize="int8", samples=2)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def main() -> int:
    names = sys.argv[1:] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"keras_zoo: unknown model(s) {', '.join(unknown)}; choose from "
              f"{', '.join(MODELS)}", file=sys.stderr)
        return 2
    for name in names:
        path = build(name)
        print(f"{name:28} {MODELS[name][0]:16} {path.stat().st_size / 2**20:6.2f} MiB  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
