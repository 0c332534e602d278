"""Image classification: MobileNetV2 / EfficientNet-Lite style inverted-residual networks.

Ranges follow MobileNetV2 (Sandler et al., CVPR 2018) and EfficientNet-Lite (Tan & Le,
2019; the "Lite" variants drop squeeze-excite and use ReLU6 for edge accelerators):

* input resolution 32-224 px (RGB), width multiplier 0.25-1.4, 10-1000 classes;
* seven stages of inverted-residual blocks with MobileNetV2's channels and strides;
  depth per stage 1-4 (1 for the first and last), per block an expansion ratio 1-6, a
  depthwise kernel of 3, 5 or 7 and optional squeeze-excite;
* ReLU6 (MobileNetV2, EfficientNet-Lite) or hard-swish (MobileNetV3) activations;
* a 1x1 head convolution to 1280 channels (scaled up for width > 1), global average
  pooling, a dense classifier and softmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import Config, SearchSpace, choice, make_divisible, weight_seed
from perfsage.spaces.blocks import conv_act, inverted_residual

RESOLUTIONS = (32, 48, 64, 96, 128, 160, 192, 224)
WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.4)
#: MobileNetV2's stages: (output channels, stride of the first block).
STAGES = ((16, 1), (24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1))
MAX_DEPTH = 4
EXPANSIONS = (1, 2, 3, 4, 5, 6)
KERNELS = (3, 5, 7)
ACTIVATIONS = ("relu6", "hard_swish")


def sample_backbone(rng: np.random.Generator) -> dict[str, Any]:
    """Width, activation and per-block choices of an inverted-residual backbone."""
    stages = []
    for i, _ in enumerate(STAGES):
        depth = 1 if i in (0, len(STAGES) - 1) else int(rng.integers(1, MAX_DEPTH + 1))
        stages.append([
            {"expand": 1 if i == 0 else choice(rng, EXPANSIONS), "kernel": choice(rng, KERNELS),
             "se": bool(rng.random() < 0.25)}
            for _ in range(depth)
        ])
    return {"width": choice(rng, WIDTHS), "activation": choice(rng, ACTIVATIONS),
            "stages": stages}


def build_backbone(b: Any, x: Any, cfg: Config) -> list[Any]:
    """Stem and stages; returns the output of every stage (SSD heads tap several)."""
    width, act = cfg["width"], cfg["activation"]
    x = conv_act(b, x, make_divisible(32 * width), kernel=3, stride=2, act=act)
    outputs = []
    for (channels, stride), blocks in zip(STAGES, cfg["stages"], strict=True):
        out_channels = make_divisible(channels * width)
        for j, block in enumerate(blocks):
            x = inverted_residual(b, x, out_channels, block["expand"], block["kernel"],
                                  stride if j == 0 else 1, block["se"], act)
        outputs.append(x)
    return outputs


class ImageClassification(SearchSpace):
    """MobileNetV2 / EfficientNet-Lite style classifiers, 32-224 px, 10-1000 classes."""

    name = "image-classification"
    family = "MobileNetV2 / EfficientNet-Lite"

    def sample(self, rng: np.random.Generator) -> Config:
        """Resolution, classes and a backbone; classes log-uniform in [10, 1000]."""
        return {
            "resolution": choice(rng, RESOLUTIONS),
            "classes": int(round(10 ** rng.uniform(1, 3))),
            **sample_backbone(rng),
            "seed": weight_seed(rng),
        }

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """MobileNetV2 layout: stem, stages, 1x1 head conv, pooling, dense, softmax."""
        from perfsage.builder import ModelBuilder

        b = ModelBuilder(seed=config["seed"], dtype=dtype)
        r = config["resolution"]
        x = build_backbone(b, b.input((1, r, r, 3)), config)[-1]
        head = make_divisible(1280 * max(1.0, config["width"]))
        x = conv_act(b, x, head, act=config["activation"])
        x = b.mean(x, axes=(1, 2), keepdims=False)
        x = b.softmax(b.dense(x, config["classes"]))
        return b.build(outputs=[x])
