"""Keyword spotting: DS-CNN / MicroNet style depthwise-separable CNNs on MFCC features.

Ranges follow DS-CNN S/M/L (Zhang et al., "Hello Edge", 2017: 49x10 MFCCs, a first
10x4 convolution with 64-276 filters, 4-5 depthwise-separable layers) and MicroNet-KWS
(Banbury et al., MLSys 2021: 49x10 inputs, 3x3 first convolution, up to 7 blocks, strided
blocks to save compute):

* input 49x10, 49x13, 49x20 or 98x40 MFCC frames x coefficients, one channel;
* a first convolution with kernel 10x4, 5x3 or 3x3 and stride 1 or 2 per axis;
* 2-7 depthwise-separable blocks (3x3 depthwise, 1x1 pointwise, ReLU), each strided with
  probability 0.15 while the map is large enough;
* every filter count log-uniform in 8-276, so the low end reaches the sub-MMAC always-on
  detectors of microcontrollers as often as the high end reaches DS-CNN-L;
* global average pooling, a dense layer to 12 (Speech Commands v2 "12-word") or 35 classes,
  and softmax.
"""

from __future__ import annotations

import numpy as np

from perfsage.spaces.base import Config, SearchSpace, choice, weight_seed

INPUTS = ((49, 10), (49, 13), (49, 20), (98, 40))
FIRST_KERNELS = ((10, 4), (5, 3), (3, 3))
FIRST_STRIDES = ((1, 1), (2, 1), (2, 2))
MIN_FILTERS, MAX_FILTERS = 8, 276
CLASSES = (12, 35)


def _filters(rng: np.random.Generator) -> int:
    """Log-uniform in [8, 276], a multiple of 4: tiny and large spotters equally likely."""
    value = np.exp(rng.uniform(np.log(MIN_FILTERS), np.log(MAX_FILTERS)))
    return int(min(MAX_FILTERS, max(MIN_FILTERS, round(value / 4) * 4)))


class KeywordSpotting(SearchSpace):
    """DS-CNN / MicroNet keyword spotters on MFCC inputs."""

    name = "keyword-spotting"
    family = "DS-CNN (Hello Edge) / MicroNet-KWS"

    def sample(self, rng: np.random.Generator) -> Config:
        """Input, first conv, blocks and classes, uniformly from the documented ranges."""
        blocks = [
            {"filters": _filters(rng), "stride": 2 if rng.random() < 0.15 else 1}
            for _ in range(int(rng.integers(2, 8)))
        ]
        return {
            "input": list(choice(rng, INPUTS)),
            "first_filters": _filters(rng),
            "first_kernel": list(choice(rng, FIRST_KERNELS)),
            "first_stride": list(choice(rng, FIRST_STRIDES)),
            "blocks": blocks,
            "classes": choice(rng, CLASSES),
            "seed": weight_seed(rng),
        }

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """First conv, depthwise-separable blocks, pooling, dense, softmax."""
        from perfsage.builder import ModelBuilder

        b = ModelBuilder(seed=config["seed"], dtype=dtype)
        frames, coefficients = config["input"]
        x = b.input((1, frames, coefficients, 1))
        x = b.conv2d(x, config["first_filters"], kernel=tuple(config["first_kernel"]),
                     stride=tuple(config["first_stride"]), activation="relu")
        for block in config["blocks"]:
            # A stride only while both spatial sides stay at least 2 after it.
            stride = block["stride"] if min(x.shape[1:3]) >= 4 else 1
            x = b.depthwise_conv2d(x, kernel=3, stride=stride, activation="relu")
            x = b.conv2d(x, block["filters"], kernel=1, activation="relu")
        x = b.mean(x, axes=(1, 2), keepdims=False)
        x = b.softmax(b.dense(x, config["classes"]))
        return b.build(outputs=[x])
