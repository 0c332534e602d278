"""Object detection: SSD / SSDLite style single-shot detectors on an inverted-residual backbone.

Ranges follow SSD (Liu et al., ECCV 2016: predictions from several feature-map scales,
3-6 default boxes per location, a box and a class head per scale) and SSDLite on
MobileNetV2 (Sandler et al., CVPR 2018: heads on the stride-16 and stride-32 maps plus
extra stride-2 layers, depthwise-separable head convolutions):

* input 128-320 px (RGB); the backbone is sampled as in the image-classification space;
* 0-3 extra layers (1x1 conv, 3x3 stride-2 depthwise, 1x1 conv), each a further scale;
* 3, 4 or 6 anchors per location, 1-90 classes (+ background); heads are depthwise 3x3 +
  1x1 (SSDLite) or a plain 3x3 convolution (SSD);
* outputs: boxes [1, N, 4] and class scores [1, N, classes + 1] (logistic), every scale
  reshaped and concatenated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import Config, SearchSpace, choice, weight_seed
from perfsage.spaces.blocks import conv_act
from perfsage.spaces.image_classification import build_backbone, sample_backbone

RESOLUTIONS = (128, 160, 192, 224, 256, 300, 320)
ANCHORS = (3, 4, 6)
HEAD_STAGES = (4, 6)  # backbone stages ending at stride 16 and stride 32
EXTRA_CHANNELS = (64, 128, 256)


class ObjectDetection(SearchSpace):
    """SSD / SSDLite detectors: backbone, extra layers, box and class heads per scale."""

    name = "object-detection"
    family = "SSD / SSDLite (MobileNetV2 backbone)"

    def sample(self, rng: np.random.Generator) -> Config:
        """Resolution, backbone, extra layers and head shape."""
        return {
            "resolution": choice(rng, RESOLUTIONS),
            **sample_backbone(rng),
            "extra": [choice(rng, EXTRA_CHANNELS) for _ in range(int(rng.integers(0, 4)))],
            "anchors": choice(rng, ANCHORS),
            "classes": int(rng.integers(1, 91)),
            "lite_heads": bool(rng.random() < 0.5),
            "seed": weight_seed(rng),
        }

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """Backbone taps plus extra layers, then heads, reshaped and concatenated."""
        from perfsage.builder import ModelBuilder

        b = ModelBuilder(seed=config["seed"], dtype=dtype)
        r, act = config["resolution"], config["activation"]
        stages = build_backbone(b, b.input((1, r, r, 3)), config)
        maps = [stages[i] for i in HEAD_STAGES]
        x = maps[-1]
        for channels in config["extra"]:
            x = conv_act(b, x, channels // 2, act=act)
            x = b.depthwise_conv2d(x, kernel=3, stride=2, activation="relu6")
            x = conv_act(b, x, channels, act=act)
            maps.append(x)
        a, classes = config["anchors"], config["classes"] + 1
        boxes = [_head(b, m, a * 4, 4, config["lite_heads"]) for m in maps]
        scores = [_head(b, m, a * classes, classes, config["lite_heads"]) for m in maps]
        boxes_out = b.concat(boxes, axis=1) if len(boxes) > 1 else boxes[0]
        scores_out = b.concat(scores, axis=1) if len(scores) > 1 else scores[0]
        return b.build(outputs=[boxes_out, b.logistic(scores_out)])


def _head(b: Any, x: Any, filters: int, per_box: int, lite: bool) -> Any:
    if lite:
        x = b.depthwise_conv2d(x, kernel=3, activation="relu6")
        x = b.conv2d(x, filters, kernel=1)
    else:
        x = b.conv2d(x, filters, kernel=3)
    return b.reshape(x, (1, -1, per_box))
