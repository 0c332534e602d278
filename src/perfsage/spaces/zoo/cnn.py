"""Classic convolutional families: plain Keras CNNs, pre-activation ResNets, DenseNets,
Inception cells and ResNeXt.

* ``keras_cnn``: VGG-style stacks (Simonyan & Zisserman, 2015) as Keras users write them,
  often Conv-ReLU-BatchNorm, whose BN the converter cannot fold, and a flatten + dense head
  that holds most of the weights (CIFAR-style 32 px inputs with megabytes of weights).
* ``preact_resnet``: identity-mapping ResNets (He et al., ECCV 2016): BN-ReLU before each
  convolution, so every BN stays a MUL and an ADD.
* ``densenet``: DenseNet-BC (Huang et al., CVPR 2017): growing concatenations, BN-ReLU-
  Conv1x1-BN-ReLU-Conv3x3 layers, growth 8-32, transitions halving channels; up to
  DenseNet-121's (6, 12, 24, 16) layers.
* ``inception``: Inception-v3-like cells (Szegedy et al., CVPR 2016): four branches (1x1;
  1x1-3x3; 1x1-3x3-3x3 or factorised 1xn/nx1; pool-1x1) concatenated, with reduction cells.
* ``resnext``: ResNeXt bottlenecks (Xie et al., CVPR 2017) with grouped 3x3 convolutions,
  cardinality 2-32, native grouped CONV_2D or split into one convolution per group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import choice
from perfsage.spaces.zoo.common import (
    RESCALING,
    channels,
    classifier,
    conv,
    preprocess,
    resolution,
)

CLASSES = (2, 10, 100, 1000)
SMALL = (32, 32, 48, 64, 96)
LARGE = (128, 160, 224)


def _input(b: Any, cfg: dict) -> Any:
    x = b.input((1, cfg["resolution"], cfg["resolution"], 3))
    return preprocess(b, x, cfg["preprocess"])


def _common(rng: np.random.Generator, small: tuple = SMALL, large: tuple = LARGE) -> dict:
    return {"resolution": resolution(rng, small, large), "classes": choice(rng, CLASSES),
            "preprocess": choice(rng, RESCALING)}


# -- keras_cnn ---------------------------------------------------------------------------

def sample_keras_cnn(rng: np.random.Generator) -> dict:
    """Stages of 1-3 convolutions, pooling between, BN after the activation half the time."""
    stages = int(rng.integers(2, 6))
    base = channels(rng, 16, 96)
    return {**_common(rng), "stages": stages, "base": base,
            "convs": [int(rng.integers(1, 4)) for _ in range(stages)],
            "bn": choice(rng, ("post", "post", "folded")),
            "head": choice(rng, ("flatten", "flatten", "gap")),
            "hidden": choice(rng, (0, 128, 256, 512, 1024))}


def build_keras_cnn(b: Any, cfg: dict) -> list:
    """Conv stages with max pooling, then a flatten (or pooled) dense head."""
    x = _input(b, cfg)
    for i, n in enumerate(cfg["convs"]):
        for _ in range(n):
            x = conv(b, x, min(512, cfg["base"] * 2**i), 3, act="relu", bn=cfg["bn"])
        if min(x.shape[1:3]) >= 2:
            x = b.max_pool(x, 2)
    if cfg["head"] == "flatten":
        h = b.reshape(x, (1, -1))
        if cfg["hidden"]:
            h = b.dense(h, cfg["hidden"], activation="relu")
        return [b.softmax(b.dense(h, cfg["classes"]))]
    return [classifier(b, x, cfg["classes"], cfg["hidden"])]


# -- preact_resnet -----------------------------------------------------------------------

def sample_preact_resnet(rng: np.random.Generator) -> dict:
    """3-4 stages of 1-4 basic or bottleneck pre-activation blocks."""
    stages = int(rng.integers(3, 5))
    return {**_common(rng), "base": channels(rng, 16, 64),
            "blocks": [int(rng.integers(1, 5)) for _ in range(stages)],
            "bottleneck": bool(rng.random() < 0.3)}


def build_preact_resnet(b: Any, cfg: dict) -> list:
    """Stem, pre-activation blocks (BN-ReLU-conv), final BN-ReLU, classifier."""
    x = _input(b, cfg)
    x = b.conv2d(x, cfg["base"], 3, stride=1 if cfg["resolution"] <= 64 else 2)
    for i, n in enumerate(cfg["blocks"]):
        width = min(256, cfg["base"] * 2**i)
        out = width * 4 if cfg["bottleneck"] else width
        for j in range(n):
            stride = 2 if j == 0 and i > 0 and min(x.shape[1:3]) >= 2 else 1
            pre = b.batch_norm(x, activation="relu")
            if cfg["bottleneck"]:
                h = b.conv2d(pre, width, 1)
                h = b.conv2d(b.batch_norm(h, "relu"), width, 3, stride=stride)
                h = b.conv2d(b.batch_norm(h, "relu"), out, 1)
            else:
                h = b.conv2d(pre, out, 3, stride=stride)
                h = b.conv2d(b.batch_norm(h, "relu"), out, 3)
            short = x if stride == 1 and x.shape[-1] == out else b.conv2d(pre, out, 1, stride)
            x = b.add(h, short)
    x = b.batch_norm(x, activation="relu")
    return [classifier(b, x, cfg["classes"])]


# -- densenet ----------------------------------------------------------------------------

def sample_densenet(rng: np.random.Generator) -> dict:
    """2-4 dense blocks of 2-24 layers, growth 8-32, compression 0.5."""
    blocks = int(rng.integers(2, 5))
    real = rng.random() < 0.3  # DenseNet-121-like depth
    layers = ([6, 12, 24, 16][:blocks] if real
              else [int(rng.integers(2, 9)) for _ in range(blocks)])
    return {**_common(rng, SMALL, (96, 128)), "growth": choice(rng, (8, 12, 16, 24, 32)),
            "layers": layers, "stem": channels(rng, 16, 64)}


def build_densenet(b: Any, cfg: dict) -> list:
    """Stem, dense blocks (each layer's output concatenated to all before), transitions."""
    x = _input(b, cfg)
    k = cfg["growth"]
    if cfg["resolution"] > 64:
        x = b.max_pool(b.conv2d(x, cfg["stem"], 7, stride=2, activation="relu"), 3, 2, "same")
    else:
        x = b.conv2d(x, cfg["stem"], 3, activation="relu")
    for i, n in enumerate(cfg["layers"]):
        for _ in range(n):
            h = b.conv2d(b.batch_norm(x, "relu"), 4 * k, 1)
            h = b.conv2d(b.batch_norm(h, "relu"), k, 3)
            x = b.concat([x, h])
        if i < len(cfg["layers"]) - 1:
            x = b.conv2d(b.batch_norm(x, "relu"), max(8, x.shape[-1] // 2), 1)
            if min(x.shape[1:3]) >= 2:
                x = b.avg_pool(x, 2)
    return [classifier(b, b.batch_norm(x, "relu"), cfg["classes"])]


# -- inception ---------------------------------------------------------------------------

def sample_inception(rng: np.random.Generator) -> dict:
    """2-4 stages of 1-3 four-branch cells, a reduction cell between stages."""
    stages = int(rng.integers(2, 5))
    return {**_common(rng), "base": channels(rng, 16, 48),
            "cells": [int(rng.integers(1, 4)) for _ in range(stages)],
            "factorised": bool(rng.random() < 0.4), "pool": choice(rng, ("avg", "max")),
            "bn": choice(rng, ("folded", "folded", "post"))}


def _inception_cell(b: Any, x: Any, width: int, cfg: dict) -> Any:
    bn = cfg["bn"]
    b1 = conv(b, x, width, 1, bn=bn)
    b2 = conv(b, conv(b, x, width // 2, 1, bn=bn), width, 3, bn=bn)
    b3 = conv(b, x, width // 2, 1, bn=bn)
    if cfg["factorised"]:
        b3 = conv(b, conv(b, b3, width // 2, (1, 7), bn=bn), width, (7, 1), bn=bn)
    else:
        b3 = conv(b, conv(b, b3, width // 2, 3, bn=bn), width, 3, bn=bn)
    pool = b.avg_pool if cfg["pool"] == "avg" else b.max_pool
    b4 = conv(b, pool(x, 3, 1, "same"), width // 2, 1, bn=bn)
    return b.concat([b1, b2, b3, b4])


def build_inception(b: Any, cfg: dict) -> list:
    """Stem, cells, reductions (strided 3x3 branch beside max pooling), classifier."""
    x = _input(b, cfg)
    x = conv(b, x, cfg["base"], 3, stride=2 if cfg["resolution"] > 64 else 1)
    for i, n in enumerate(cfg["cells"]):
        width = cfg["base"] * 2**i
        for _ in range(n):
            x = _inception_cell(b, x, width, cfg)
        if i < len(cfg["cells"]) - 1 and min(x.shape[1:3]) >= 4:
            red = conv(b, x, width, 3, stride=2)
            x = b.concat([red, b.max_pool(x, 3, 2, "same")])
    return [classifier(b, x, cfg["classes"])]


# -- resnext -----------------------------------------------------------------------------

def sample_resnext(rng: np.random.Generator) -> dict:
    """3-4 stages of 1-3 bottlenecks, cardinality 2-32, group width 4-16."""
    stages = int(rng.integers(3, 5))
    cardinality = choice(rng, (2, 4, 8, 16, 32))
    # TFLite Micro concatenates at most 10 tensors: more groups only as one grouped CONV_2D.
    native = bool(rng.random() < 0.6) or cardinality > 8
    return {**_common(rng), "cardinality": cardinality, "group_width": choice(rng, (4, 8, 16)),
            "blocks": [int(rng.integers(1, 4)) for _ in range(stages)],
            "native": native, "stem": channels(rng, 16, 64)}


def build_resnext(b: Any, cfg: dict) -> list:
    """Stem, grouped bottlenecks with projection shortcuts, classifier."""
    x = _input(b, cfg)
    x = b.conv2d(x, cfg["stem"], 3, stride=2 if cfg["resolution"] > 64 else 1,
                 activation="relu")
    g = cfg["cardinality"]
    for i, n in enumerate(cfg["blocks"]):
        width = min(512, g * cfg["group_width"] * 2**i)
        out = 2 * width
        for j in range(n):
            stride = 2 if j == 0 and i > 0 and min(x.shape[1:3]) >= 2 else 1
            h = b.conv2d(x, width, 1, activation="relu")
            h = b.grouped_conv2d(h, width, g, 3, stride=stride, activation="relu",
                                 native=cfg["native"])
            h = b.conv2d(h, out, 1)
            short = x if stride == 1 and x.shape[-1] == out else b.conv2d(x, out, 1, stride)
            x = b.add(h, short, activation="relu")
    return [classifier(b, x, cfg["classes"])]


FAMILIES = {
    "keras_cnn": (sample_keras_cnn, build_keras_cnn),
    "preact_resnet": (sample_preact_resnet, build_preact_resnet),
    "densenet": (sample_densenet, build_densenet),
    "inception": (sample_inception, build_inception),
    "resnext": (sample_resnext, build_resnext),
}
