"""Mobile families whose operators our task spaces lack: ShuffleNetV2, MobileNetV3 and
EfficientNetV2.

* ``shufflenet``: ShuffleNetV2 (Ma et al., ECCV 2018): channel split (SPLIT), a 1x1-dw3x3-1x1
  branch, concatenation and channel shuffle (RESHAPE, TRANSPOSE, RESHAPE); widths of the
  0.5x-2.0x models.
* ``mobilenet_v3``: MobileNetV3 (Howard et al., ICCV 2019): hard-swish, squeeze-excite
  gated by a hard sigmoid (the +3 folded into the gate's convolution, RELU6 fused, MUL by
  1/6, as the converter writes it), a 1x1 convolution head; Small- and Large-like block
  lists with random width.
* ``efficientnet_v2``: EfficientNetV2 (Tan & Le, ICML 2021): fused-MBConv (3x3 expansion
  convolution, 1x1 projection) in early stages, MBConv with sigmoid squeeze-excite later,
  swish (LOGISTIC and MUL) throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import choice, make_divisible
from perfsage.spaces.zoo.common import (
    RESCALING,
    activation,
    channel_shuffle,
    classifier,
    conv,
    preprocess,
    resolution,
    squeeze_excite,
)

CLASSES = (2, 10, 100, 1000)
SMALL = (32, 48, 64, 96, 128)
LARGE = (160, 192, 224)

# -- shufflenet --------------------------------------------------------------------------

SHUFFLE_WIDTHS = {0.5: (48, 96, 192), 1.0: (116, 232, 464), 1.5: (176, 352, 704),
                  2.0: (244, 488, 976)}


def sample_shufflenet(rng: np.random.Generator) -> dict:
    """Width 0.5-2.0x, 1-8 units per stage (ShuffleNetV2 has 4, 8, 4)."""
    return {"resolution": resolution(rng, SMALL, LARGE), "classes": choice(rng, CLASSES),
            "width": choice(rng, tuple(SHUFFLE_WIDTHS)),
            "units": [int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(1, 5))],
            "last": choice(rng, (512, 1024, 2048))}


def _shuffle_unit(b: Any, x: Any, out: int, stride: int) -> Any:
    if stride == 1:
        keep, x = b.split(x, 2, axis=3)
    else:
        keep = b.depthwise_conv2d(x, 3, stride=2)
        keep = b.conv2d(keep, out // 2, 1, activation="relu")
    h = b.conv2d(x, out // 2, 1, activation="relu")
    h = b.depthwise_conv2d(h, 3, stride=stride)
    h = b.conv2d(h, out // 2, 1, activation="relu")
    return channel_shuffle(b, b.concat([keep, h]), 2)


def build_shufflenet(b: Any, cfg: dict) -> list:
    """Stem conv + max pool, three stages of shuffle units, 1x1 conv, classifier."""
    r = cfg["resolution"]
    x = b.input((1, r, r, 3))
    x = b.conv2d(x, 24, 3, stride=2, activation="relu")
    if r >= 64:
        x = b.max_pool(x, 3, 2, "same")
    for out, n in zip(SHUFFLE_WIDTHS[cfg["width"]], cfg["units"], strict=True):
        for j in range(n):
            x = _shuffle_unit(b, x, out, 2 if j == 0 and min(x.shape[1:3]) >= 2 else 1)
    x = b.conv2d(x, cfg["last"], 1, activation="relu")
    return [classifier(b, x, cfg["classes"])]


# -- mobilenet_v3 ------------------------------------------------------------------------

#: (kernel, expansion, output channels, squeeze-excite, activation, stride) per block:
#: MobileNetV3-Small's and -Large's lists (Howard et al., 2019, tables 1 and 2).
V3_SMALL = ((3, 1, 16, True, "relu", 2), (3, 4.5, 24, False, "relu", 2),
            (3, 3.67, 24, False, "relu", 1), (5, 4, 40, True, "hard_swish", 2),
            (5, 6, 40, True, "hard_swish", 1), (5, 6, 40, True, "hard_swish", 1),
            (5, 3, 48, True, "hard_swish", 1), (5, 3, 48, True, "hard_swish", 1),
            (5, 6, 96, True, "hard_swish", 2), (5, 6, 96, True, "hard_swish", 1),
            (5, 6, 96, True, "hard_swish", 1))
V3_LARGE = ((3, 1, 16, False, "relu", 1), (3, 4, 24, False, "relu", 2),
            (3, 3, 24, False, "relu", 1), (5, 3, 40, True, "relu", 2),
            (5, 3, 40, True, "relu", 1), (5, 3, 40, True, "relu", 1),
            (3, 6, 80, False, "hard_swish", 2), (3, 2.5, 80, False, "hard_swish", 1),
            (3, 2.3, 80, False, "hard_swish", 1), (3, 2.3, 80, False, "hard_swish", 1),
            (3, 6, 112, True, "hard_swish", 1), (3, 6, 112, True, "hard_swish", 1),
            (5, 6, 160, True, "hard_swish", 2), (5, 6, 160, True, "hard_swish", 1),
            (5, 6, 160, True, "hard_swish", 1))


def sample_mobilenet_v3(rng: np.random.Generator) -> dict:
    """Small or Large, width 0.35-1.25, each block kept with probability 0.8."""
    large = bool(rng.random() < 0.5)
    blocks = V3_LARGE if large else V3_SMALL
    keep = [i for i in range(len(blocks)) if i == 0 or rng.random() < 0.8]
    return {"resolution": resolution(rng, SMALL, LARGE), "classes": choice(rng, CLASSES),
            "large": large, "width": choice(rng, (0.35, 0.5, 0.75, 1.0, 1.25)), "keep": keep,
            "gate": choice(rng, ("hard_sigmoid", "hard_sigmoid", "sigmoid")),
            "preprocess": choice(rng, RESCALING)}


def build_mobilenet_v3(b: Any, cfg: dict) -> list:
    """Input normalisation (sometimes), hard-swish stem, the kept blocks, 1x1 head
    convolutions, classifier."""
    r, w = cfg["resolution"], cfg["width"]
    x = preprocess(b, b.input((1, r, r, 3)), cfg["preprocess"])
    x = conv(b, x, 16, 3, stride=2, act="hard_swish")
    table = V3_LARGE if cfg["large"] else V3_SMALL
    for i in cfg["keep"]:
        kernel, expand, out, se, act, stride = table[i]
        out = make_divisible(out * w)
        stride = stride if min(x.shape[1:3]) >= 2 else 1
        cin = x.shape[-1]
        h = conv(b, x, make_divisible(cin * expand), 1, act=act) if expand != 1 else x
        h = b.depthwise_conv2d(h, kernel, stride=stride,
                               activation=act if act == "relu" else None)
        if act != "relu":
            h = activation(b, h, act)
        if se:
            h = squeeze_excite(b, h, make_divisible(h.shape[-1] / 4), cfg["gate"])
        h = b.conv2d(h, out, 1)
        x = b.add(h, x) if stride == 1 and cin == out else h
    x = conv(b, x, make_divisible(x.shape[-1] * 6), 1, act="hard_swish")
    x = b.mean(x, axes=(1, 2), keepdims=True)
    x = conv(b, x, 1024 if cfg["large"] else 576, 1, act="hard_swish")
    x = b.conv2d(x, cfg["classes"], 1)
    return [b.softmax(b.reshape(x, (1, cfg["classes"])))]


# -- efficientnet_v2 ---------------------------------------------------------------------

def sample_efficientnet_v2(rng: np.random.Generator) -> dict:
    """1-3 fused-MBConv stages, 1-3 MBConv stages, 1-4 blocks each, width 0.5-1.5."""
    fused = int(rng.integers(1, 4))
    mb = int(rng.integers(1, 4))
    return {"resolution": resolution(rng, SMALL, LARGE), "classes": choice(rng, CLASSES),
            "width": choice(rng, (0.5, 0.75, 1.0, 1.25, 1.5)),
            "stages": [{"fused": i < fused, "blocks": int(rng.integers(1, 5)),
                        "expand": choice(rng, (1, 4) if i < fused else (4, 6))}
                       for i in range(fused + mb)],
            "preprocess": choice(rng, RESCALING)}


#: Output channels and stride per stage (EfficientNetV2-S's first six stages).
V2_STAGES = ((24, 1), (48, 2), (64, 2), (128, 2), (160, 1), (256, 2))


def build_efficientnet_v2(b: Any, cfg: dict) -> list:
    """Stem, fused-MBConv then MBConv stages (swish, sigmoid SE), 1x1 head, classifier."""
    r, w = cfg["resolution"], cfg["width"]
    x = preprocess(b, b.input((1, r, r, 3)), cfg["preprocess"])
    x = conv(b, x, make_divisible(24 * w), 3, stride=2, act="swish")
    for stage, (base, first_stride) in zip(cfg["stages"], V2_STAGES, strict=False):
        out = make_divisible(base * w)
        for j in range(stage["blocks"]):
            stride = first_stride if j == 0 and min(x.shape[1:3]) >= 2 else 1
            cin = x.shape[-1]
            hidden = make_divisible(cin * stage["expand"])
            if stage["fused"]:
                if stage["expand"] == 1:
                    h = conv(b, x, out, 3, stride=stride, act="swish")
                else:
                    h = conv(b, x, hidden, 3, stride=stride, act="swish")
                    h = b.conv2d(h, out, 1)
            else:
                h = conv(b, x, hidden, 1, act="swish")
                h = activation(b, b.depthwise_conv2d(h, 3, stride=stride), "swish")
                h = squeeze_excite(b, h, max(8, cin // 4), "sigmoid", act="swish")
                h = b.conv2d(h, out, 1)
            x = b.add(h, x) if stride == 1 and cin == out else h
    x = conv(b, x, make_divisible(1280 * min(w, 1.0)), 1, act="swish")
    return [classifier(b, x, cfg["classes"])]


FAMILIES = {
    "shufflenet": (sample_shufflenet, build_shufflenet),
    "mobilenet_v3": (sample_mobilenet_v3, build_mobilenet_v3),
    "efficientnet_v2": (sample_efficientnet_v2, build_efficientnet_v2),
}
