"""Dense prediction: U-Net encoder-decoders and multi-output SSD-like detectors.

* ``unet``: U-Net (Ronneberger et al., MICCAI 2015): 2-4 levels of two 3x3 convolutions
  with max pooling, a decoder that upsamples (nearest or bilinear RESIZE, or a 1x1
  convolution and DEPTH_TO_SPACE, which Vela leaves to the CPU on Ethos-U55), concatenates
  the skip and convolves; per-pixel classes, logistic for one class, raw logits or a
  SOFTMAX over the classes for more (a SOFTMAX over every pixel is what sets Vela's SRAM
  peak and costs it most of a small U-Net's time).
* ``ssd``: SSD (Liu et al., ECCV 2016) heads on 2-4 scales of a VGG-like backbone: per scale
  a box and a class convolution; outputs either concatenated over scales (two outputs) or
  left per scale (2 x scales outputs), as exporters of such detectors differ; class scores
  through a logistic or a SOFTMAX over the classes (SSDLite's 828x91 SOFTMAX is one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import choice
from perfsage.spaces.zoo.common import channels, conv, resolution

# -- unet --------------------------------------------------------------------------------


def sample_unet(rng: np.random.Generator) -> dict:
    """2-4 levels, base width 8-64, 1-21 classes, one of four upsampling layers, a head."""
    return {"resolution": resolution(rng, (32, 64, 64, 96, 128), (192, 256)),
            "channels": choice(rng, (1, 3)), "levels": int(rng.integers(2, 5)),
            "base": channels(rng, 8, 48), "classes": choice(rng, (1, 2, 4, 21)),
            "up": choice(rng, ("nearest", "nearest", "bilinear", "depth_to_space")),
            "bn": choice(rng, ("folded", "folded", "post")),
            "head": choice(rng, ("logits", "softmax"))}


def _double_conv(b: Any, x: Any, width: int, bn: str) -> Any:
    return conv(b, conv(b, x, width, 3, bn=bn), width, 3, bn=bn)


def build_unet(b: Any, cfg: dict) -> list:
    """Encoder with skips, bottleneck, decoder with upsampling and concatenation, 1x1 head."""
    r = cfg["resolution"]
    x = b.input((1, r, r, cfg["channels"]))
    skips = []
    for i in range(cfg["levels"]):
        x = _double_conv(b, x, cfg["base"] * 2**i, cfg["bn"])
        skips.append(x)
        x = b.max_pool(x, 2)
    x = _double_conv(b, x, cfg["base"] * 2 ** cfg["levels"], cfg["bn"])
    for skip in reversed(skips):
        width = skip.shape[-1]
        if cfg["up"] == "depth_to_space":
            x = b.depth_to_space(b.conv2d(x, 4 * width, 1), 2)
        else:
            x = conv(b, b.resize(x, skip.shape[1:3], method=cfg["up"]), width, 2)
        x = _double_conv(b, b.concat([skip, x]), width, cfg["bn"])
    out = b.conv2d(x, cfg["classes"], 1)
    if cfg["classes"] == 1:
        return [b.logistic(out)]
    return [b.softmax(out) if cfg.get("head") == "softmax" else out]


# -- ssd ---------------------------------------------------------------------------------

def sample_ssd(rng: np.random.Generator) -> dict:
    """3-5 backbone stages, heads on 2-4 scales, 3-6 anchors, 1-90 classes, a score layer."""
    stages = int(rng.integers(3, 6))
    return {"resolution": resolution(rng, (64, 96, 128), (192, 256, 300)),
            "stages": stages, "base": channels(rng, 16, 64),
            "scales": int(rng.integers(2, min(stages, 4) + 1)),
            "anchors": choice(rng, (3, 4, 6)), "classes": choice(rng, (1, 2, 20, 90)),
            "outputs": choice(rng, ("concat", "per_scale")),
            "separable": bool(rng.random() < 0.5),
            "scores": choice(rng, ("logistic", "softmax"))}


def _head(b: Any, x: Any, filters: int, separable: bool) -> Any:
    if separable:
        return b.conv2d(b.depthwise_conv2d(x, 3, activation="relu6"), filters, 1)
    return b.conv2d(x, filters, 3)


def build_ssd(b: Any, cfg: dict) -> list:
    """Backbone stages, then per scale: boxes [1, n, 4] and scores [1, n, classes]."""
    r = cfg["resolution"]
    x = b.input((1, r, r, 3))
    features = []
    for i in range(cfg["stages"]):
        width = min(512, cfg["base"] * 2**i)
        x = conv(b, x, width, 3, stride=2 if min(x.shape[1:3]) >= 2 else 1, act="relu6")
        x = conv(b, x, width, 3, act="relu6")
        features.append(x)
    boxes, scores = [], []
    a, k = cfg["anchors"], cfg["classes"] + 1
    for f in features[-cfg["scales"]:]:
        boxes.append(b.reshape(_head(b, f, a * 4, cfg["separable"]), (1, -1, 4)))
        scores.append(b.reshape(_head(b, f, a * k, cfg["separable"]), (1, -1, k)))
    softmax = cfg.get("scores") == "softmax"
    if cfg["outputs"] == "concat":
        joined = b.concat(scores, axis=1)
        return [b.concat(boxes, axis=1), b.softmax(joined) if softmax else b.logistic(joined)]
    return [*boxes, *([b.softmax(s) for s in scores] if softmax else scores)]


FAMILIES = {
    "unet": (sample_unet, build_unet),
    "ssd": (sample_ssd, build_ssd),
}
