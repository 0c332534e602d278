"""Real architectures as int8 TFLite files: Keras Applications through the official converter.

    .venv/bin/python benchmarks/keras_zoo.py [NAME ...]     # build (cached), print sizes

Models nobody here designed, for the benchmarks that must measure on real architectures
(speed in bench_cli_speed.py, accuracy in real_models.py). Weights are random (no download
reaches this machine), drawn with a fixed seed so a build is byte-for-byte repeatable, and
scaled so activations keep the order trained ones have (:func:`fan_in_weights`,
:func:`calibrate_batch_norm`); the int8 calibration uses random inputs. Vela's and TFLite
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
sys.path.insert(0, str(ROOT / "benchmarks"))


def _app(name: str, shape: tuple[int, int, int], **kwargs) -> Callable:
    """A Keras Applications builder with random weights."""
    def make():
        import keras

        return getattr(keras.applications, name)(weights=None, input_shape=shape, **kwargs)

    return make


def _arch(name: str, **kwargs) -> Callable:
    """A hand-written public architecture from keras_archs.py."""
    def make():
        import keras_archs

        return getattr(keras_archs, name)(**kwargs)

    return make


_SMALL_HEAD = {"classes": 10}

#: Model name -> (family, builder). Families group architectures for family-level splits.
#: Cheap models come first so that a benchmark run has a useful first batch early.
MODELS: dict[str, tuple[str, Callable]] = {
    # MLPerf Tiny v1.0 references
    "mlperf_kws_ds_cnn_s": ("mlperf-tiny", _arch("ds_cnn_kws", filters=64)),
    "mlperf_ic_resnet8": ("mlperf-tiny", _arch("resnet8_cifar")),
    "mlperf_ad_fc_autoencoder": ("mlperf-tiny", _arch("fc_autoencoder")),
    "mlperf_vww_mobilenet_v1_0.25_96": ("mlperf-tiny", _app("MobileNet", (96, 96, 3),
                                                            alpha=0.25, classes=2)),
    "ds_cnn_m_kws": ("mlperf-tiny", _arch("ds_cnn_kws", filters=172)),
    # hand-written public architectures
    "cnn_relu_bn_64": ("keras-cnn-bn", _arch("cnn_relu_bn", image=64)),
    "cnn_relu_bn_96_wide": ("keras-cnn-bn", _arch("cnn_relu_bn", image=96,
                                                  widths=(48, 96, 192))),
    "espcn_x3_64": ("super-resolution", _arch("espcn", image=64, scale=3)),
    "fsrcnn_s_x2_64": ("super-resolution", _arch("fsrcnn", image=64, d=32, s=5, m=1)),
    "fsrcnn_x2_96": ("super-resolution", _arch("fsrcnn", image=96)),
    "tcn_har_128x9": ("temporal-conv", _arch("tcn")),
    "tcn_kws_98x40_wide": ("temporal-conv", _arch("tcn", steps=98, features=40, filters=64,
                                                  dilations=(1, 2, 4, 8, 16), classes=12)),
    "lstm_kws_64": ("recurrent", _arch("lstm_kws")),
    "lstm_kws_64_unrolled": ("recurrent", _arch("lstm_kws", unroll=True)),
    "gru_kws_64": ("recurrent", _arch("gru_kws")),
    "vit_tiny_32_p4": ("vit", _arch("vit")),
    "vit_small_64_p8": ("vit", _arch("vit", image=64, patch=8, dim=128, depth=6, heads=4)),
    "mobilevit_xxs_96": ("mobilevit", _arch("mobilevit", image=96)),
    "mobilevit_xs_128": ("mobilevit", _arch("mobilevit", image=128, widths=(32, 48, 64, 80, 96),
                                            dims=(96, 120))),
    "unet_64_b16": ("unet", _arch("unet", image=64)),
    "unet_96_b24_l3": ("unet", _arch("unet", image=96, channels=1, base=24, levels=3)),
    "shufflenet_v2_0.5_96": ("shufflenet-v2", _arch("shufflenet_v2", image=96)),
    "shufflenet_v2_1.0_128": ("shufflenet-v2", _arch("shufflenet_v2", image=128,
                                                     widths=(116, 232, 464))),
    "squeezenet_1.1_128": ("squeezenet", _arch("squeezenet", image=128)),
    "squeezenet_1.1_96_c10": ("squeezenet", _arch("squeezenet", image=96, **_SMALL_HEAD)),
    "ssdlite_mnv2_0.35_128": ("ssd", _arch("ssdlite", image=128)),
    "ssdlite_mnv2_0.5_160": ("ssd", _arch("ssdlite", image=160, alpha=0.5, classes=91)),
    "resnet18_0.5_96": ("resnet", _arch("resnet18", image=96, width=32, **_SMALL_HEAD)),
    "resnet18_128": ("resnet", _arch("resnet18", image=128)),
    "regnetx_200mf_128": ("regnet", _arch("regnetx", image=128)),
    "regnetx_400mf_96": ("regnet", _arch("regnetx", image=96, widths=(32, 64, 160, 384),
                                         depths=(1, 2, 7, 12), group_width=16)),
    # Keras Applications
    "mobilenet_v1_0.25_128": ("mobilenet-v1", _app("MobileNet", (128, 128, 3), alpha=0.25)),
    "mobilenet_v1_0.5_128": ("mobilenet-v1", _app("MobileNet", (128, 128, 3), alpha=0.5)),
    "mobilenet_v1_0.75_160": ("mobilenet-v1", _app("MobileNet", (160, 160, 3), alpha=0.75)),
    "mobilenet_v2_0.35_96": ("mobilenet-v2", _app("MobileNetV2", (96, 96, 3), alpha=0.35)),
    "mobilenet_v2_0.5_128": ("mobilenet-v2", _app("MobileNetV2", (128, 128, 3), alpha=0.5)),
    "mobilenet_v2_0.75_160": ("mobilenet-v2", _app("MobileNetV2", (160, 160, 3), alpha=0.75)),
    "mobilenet_v3_small_0.75_128": ("mobilenet-v3", _app("MobileNetV3Small", (128, 128, 3),
                                                         alpha=0.75)),
    "mobilenet_v3_small_1.0_160_min": ("mobilenet-v3", _app("MobileNetV3Small", (160, 160, 3),
                                                            minimalistic=True)),
    "mobilenet_v3_large_0.75_128": ("mobilenet-v3", _app("MobileNetV3Large", (128, 128, 3),
                                                         alpha=0.75)),
    "efficientnet_b0_128": ("efficientnet", _app("EfficientNetB0", (128, 128, 3))),
    "efficientnet_v2_b0_128": ("efficientnet", _app("EfficientNetV2B0", (128, 128, 3))),
    "resnet50_v2_96": ("resnet", _app("ResNet50V2", (96, 96, 3), **_SMALL_HEAD)),
    "densenet121_96": ("densenet", _app("DenseNet121", (96, 96, 3), **_SMALL_HEAD)),
    "nasnet_mobile_96": ("nasnet", _app("NASNetMobile", (96, 96, 3), **_SMALL_HEAD)),
    # real-size (224 px ImageNet) ones
    "mobilenet_v1_1.0_224": ("mobilenet-v1", _app("MobileNet", (224, 224, 3))),
    "mobilenet_v2_1.0_224": ("mobilenet-v2", _app("MobileNetV2", (224, 224, 3))),
    "mobilenet_v3_large_1.0_224": ("mobilenet-v3", _app("MobileNetV3Large", (224, 224, 3))),
    "efficientnet_b0_224": ("efficientnet", _app("EfficientNetB0", (224, 224, 3))),
    "efficientnet_b1_160": ("efficientnet", _app("EfficientNetB1", (160, 160, 3))),
    "resnet50_160": ("resnet", _app("ResNet50", (160, 160, 3))),
    "densenet121_128": ("densenet", _app("DenseNet121", (128, 128, 3))),
    "convnext_tiny_64": ("convnext", _app("ConvNeXtTiny", (64, 64, 3), **_SMALL_HEAD)),
}

#: Seed for every weight initialiser and the int8 calibration inputs.
SEED = 0


def fan_in_weights(model, seed: int = SEED) -> None:
    """Redraw every convolution and dense kernel He-normal over its true fan-in.

    Keras's default Glorot initialiser counts a depthwise kernel's fan-in as kh*kw*channels
    although each output sees kh*kw inputs, so an untrained MobileNet or DS-CNN shrinks its
    activations ~10x per block: logits near 1e-6 get int8 scales near 1e-8, which TFLite
    Micro's softmax rejects with an abort (QuantizeMultiplierGreaterThanOne) and which no
    trained model has. He initialisation (He et al., 2015) keeps activations of order one,
    as training does. Layers inside other layers (attention's projections) keep Keras's.
    """
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    L = keras.layers  # noqa: N806 - the usual Keras alias
    for layer in model.layers:
        if isinstance(layer, L.DepthwiseConv2D):
            shape = tuple(layer.kernel.shape)
            fan_in = shape[0] * shape[1]
        elif isinstance(layer, L.Conv2DTranspose):
            shape = tuple(layer.kernel.shape)
            stride = layer.strides[0] * layer.strides[1]
            fan_in = max(1, shape[0] * shape[1] * shape[3] // stride)
        elif isinstance(layer, L.Conv1D | L.Conv2D | L.Dense):
            shape = tuple(layer.kernel.shape)
            fan_in = int(np.prod(shape[:-1]))
        else:
            continue
        layer.kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32"))


def calibrate_batch_norm(model, seed: int = SEED, samples: int = 4) -> None:
    """Set each BatchNorm's moving statistics to those of its input on random data.

    An untrained BatchNorm is the identity, so activations still drift with depth where
    gates halve them (squeeze-excite's sigmoid, swish near zero: EfficientNet's logits end
    near 1e-6 even with :func:`fan_in_weights`). Trained BatchNorms normalise; giving them
    the statistics of their inputs keeps activations, and so int8 scales, of the order
    trained ones have. One forward pass in training mode, where every BatchNorm normalises
    with its batch's statistics, gives each its input as calibrated upstream layers make it.
    """
    import keras
    import numpy as np

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    shape = (samples, *model.inputs[0].shape[1:])
    data = np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")
    for layer, seen in zip(norms, probe(data, training=True), strict=True):
        seen = np.asarray(seen)
        axes = tuple(i for i in range(seen.ndim) if i != layer.axis % seen.ndim)
        layer.moving_mean.assign(seen.mean(axis=axes).astype("float32"))
        layer.moving_variance.assign(seen.var(axis=axes).astype("float32"))


def build(name: str) -> Path:
    """The int8 .tflite file of ``name``, converted once and cached."""
    path = CACHE / f"{name}.tflite"
    if not path.is_file():
        import keras

        from helpers.keras_models import convert

        family, make = MODELS[name]
        CACHE.mkdir(parents=True, exist_ok=True)
        keras.backend.clear_session()  # layer names (kept in the file) restart from zero
        keras.utils.set_random_seed(SEED)
        model = make()
        fan_in_weights(model)
        calibrate_batch_norm(model)
        data = convert(model, quantize="int8", seed=SEED, samples=2)
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
    if len(names) > 1:
        return _each_in_its_own_process(names)
    name = names[0]
    try:
        path = build(name)
    except Exception as exc:  # the converter rejects some architectures: say why, go on
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{name} FAILED: {reason[:300]}", flush=True)
        return 1
    print(f"{name:32} {MODELS[name][0]:16} {path.stat().st_size / 2**20:6.2f} MiB  {path}",
          flush=True)
    return 0


def _each_in_its_own_process(names: list[str]) -> int:
    """Build each model in a child process: TensorFlow's converter can crash the process
    (a segfault in ``libpywrap_tflite_common`` seen on an LSTM), and one crash must cost one
    model, not the rest of the zoo. Cached models cost no process."""
    import subprocess

    failed = 0
    for name in names:
        cached = CACHE / f"{name}.tflite"
        if cached.exists():
            print(f"{name:32} {MODELS[name][0]:16} {cached.stat().st_size / 2**20:6.2f} MiB  "
                  f"{cached}", flush=True)
            continue
        done = subprocess.run([sys.executable, __file__, name], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(name)]
        if done.returncode < 0:
            lines = [f"{name} FAILED: the converter's process died (signal {-done.returncode})"]
        print("\n".join(lines) or f"{name} FAILED: exit {done.returncode}", flush=True)
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
