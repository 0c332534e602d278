"""Attention families: ViT-like encoders and MobileViT-like hybrids.

* ``vit``: ViT (Dosovitskiy et al., ICLR 2021) at DeiT-Tiny to -Small sizes and below:
  a strided patch-embedding convolution, a position embedding (ADD of a constant),
  pre-norm encoder blocks -- layer norm as the converter decomposes it, multi-head
  self-attention with BATCH_MATMUL and SOFTMAX, an MLP with GELU (TFLite's GELU operator,
  or its tanh form spelled out as older converters wrote it) -- and mean pooling of tokens.
* ``mobilevit``: MobileViT (Mehta & Rastegari, ICLR 2022): inverted residuals, then blocks
  that unfold the map into 2x2 patches (RESHAPE, rank-5 TRANSPOSE), run transformer layers
  over them, fold back, and fuse with the input (concatenation, 3x3 convolution); swish.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from perfsage.spaces.base import choice, make_divisible
from perfsage.spaces.zoo.common import activation, classifier, conv, resolution

CLASSES = (2, 10, 100, 1000)
MLP_ACTS = ("gelu", "gelu_decomposed", "gelu_decomposed")


def attention(b: Any, t: Any, heads: int) -> Any:
    """Multi-head self-attention over tokens ``[batch, n, d]`` as Keras' MultiHeadAttention
    converts: dense projections that keep their dimensions, heads split by RESHAPE and
    TRANSPOSE, BATCH_MATMUL, MUL by ``1/sqrt(d_head)``, SOFTMAX, BATCH_MATMUL, merge, dense.
    """
    p, n, d = t.shape
    dh = d // heads

    def project(z: Any) -> Any:  # [p, n, d] -> [p, n, h, dh]
        return b.reshape(b.dense(z, d), (p, n, heads, dh))

    # In the converter's order of operators.
    q, k = project(t), project(t)
    q, k = b.transpose(q, (0, 2, 1, 3)), b.transpose(k, (0, 2, 3, 1))  # [p, h, n|dh, dh|n]
    weights = b.softmax(b.mul_const(b.batch_matmul(q, k), 1.0 / math.sqrt(dh)))
    v = b.transpose(project(t), (0, 2, 1, 3))
    o = b.transpose(b.batch_matmul(weights, v), (0, 2, 1, 3))  # [p, n, h, dh]
    return b.dense(b.reshape(o, (p, n, d)), d)


def encoder_block(b: Any, t: Any, heads: int, mlp: int, act: str) -> Any:
    """Pre-norm transformer layer: x + MHSA(LN(x)), then x + MLP(LN(x))."""
    t = b.add(t, attention(b, b.layer_norm(t), heads))
    h = b.dense(activation(b, b.dense(b.layer_norm(t), mlp), act), t.shape[-1])
    return b.add(t, h)


# -- vit ---------------------------------------------------------------------------------

def sample_vit(rng: np.random.Generator) -> dict:
    """Width 64-384, 1-6 heads, depth 2-12, MLP ratio 2-4, at most 256 tokens."""
    heads = choice(rng, (1, 2, 3, 4, 6))
    dim = heads * choice(rng, (16, 32, 64))
    r = resolution(rng, (32, 32, 64, 96), (160, 224))
    patches = [p for p in (4, 8, 16) if (r // p) ** 2 <= 256 and r // p >= 2]
    return {"resolution": r, "classes": choice(rng, CLASSES), "patch": choice(rng, patches),
            "dim": dim, "heads": heads, "depth": int(rng.integers(2, 13)),
            "mlp_ratio": choice(rng, (2, 3, 4)), "act": choice(rng, MLP_ACTS)}


def build_vit(b: Any, cfg: dict) -> list:
    """Patch embedding, position embedding, encoder blocks, LN, token mean, classifier."""
    r, p, d = cfg["resolution"], cfg["patch"], cfg["dim"]
    x = b.input((1, r, r, 3))
    x = b.conv2d(x, d, p, stride=p, padding="valid")
    side = x.shape[1]
    t = b.reshape(x, (1, side * side, d))
    t = b.add_const(t, 0.1 * np.sin(np.arange(side * side * d) * 0.37))  # position embedding
    for _ in range(cfg["depth"]):
        t = encoder_block(b, t, cfg["heads"], cfg["mlp_ratio"] * d, cfg["act"])
    t = b.layer_norm(t)
    pooled = b.mean(t, axes=(1,), keepdims=False)
    return [b.softmax(b.dense(pooled, cfg["classes"]))]


# -- mobilevit ---------------------------------------------------------------------------

def sample_mobilevit(rng: np.random.Generator) -> dict:
    """XXS-S-like widths, 1-3 MobileViT blocks of 1-4 transformer layers."""
    vit_blocks = int(rng.integers(1, 4))
    return {"resolution": resolution(rng, (32, 64, 64, 96, 128), (192, 256)),
            "classes": choice(rng, CLASSES), "width": choice(rng, (0.5, 0.75, 1.0, 1.5)),
            "dims": [choice(rng, (48, 64, 96, 144)) for _ in range(vit_blocks)],
            "layers": [int(rng.integers(1, 5)) for _ in range(vit_blocks)],
            "heads": choice(rng, (1, 2, 4)), "act": choice(rng, ("swish", "swish", "gelu"))}


def _mv2(b: Any, x: Any, out: int, stride: int) -> Any:
    cin = x.shape[-1]
    h = conv(b, x, cin * 4, 1, act="swish")
    h = activation(b, b.depthwise_conv2d(h, 3, stride=stride), "swish")
    h = b.conv2d(h, out, 1)
    return b.add(h, x) if stride == 1 and cin == out else h


def _mobilevit_block(b: Any, x: Any, dim: int, layers: int, heads: int, act: str) -> Any:
    _, hgt, wid, c = x.shape
    y = conv(b, x, c, 3, act="swish")
    y = b.conv2d(y, dim, 1)
    # Unfold 2x2 patches: [h/2, 2, w/2, 2, d] -> [2, 2, h/2, w/2, d] -> [4, n, d].
    n = (hgt // 2) * (wid // 2)
    t = b.reshape(y, (hgt // 2, 2, wid // 2, 2, dim))
    t = b.reshape(b.transpose(t, (1, 3, 0, 2, 4)), (4, n, dim))
    for _ in range(layers):
        t = encoder_block(b, t, heads, 2 * dim, act)
    t = b.layer_norm(t)
    t = b.transpose(b.reshape(t, (2, 2, hgt // 2, wid // 2, dim)), (2, 0, 3, 1, 4))
    y = b.reshape(t, (1, hgt, wid, dim))
    y = conv(b, y, c, 1, act="swish")
    return conv(b, b.concat([x, y]), c, 3, act="swish")


def build_mobilevit(b: Any, cfg: dict) -> list:
    """Stem, inverted residuals to stride 8, MobileViT blocks at strides 8-32, classifier."""
    r, w = cfg["resolution"], cfg["width"]
    x = b.input((1, r, r, 3))
    x = conv(b, x, make_divisible(16 * w), 3, stride=2, act="swish")
    x = _mv2(b, x, make_divisible(32 * w), 1)
    x = _mv2(b, x, make_divisible(48 * w), 2)
    for dim, layers in zip(cfg["dims"], cfg["layers"], strict=True):
        stride = 2 if min(x.shape[1:3]) >= 8 else 1
        x = _mv2(b, x, make_divisible(x.shape[-1] * 1.5), stride)
        if x.shape[1] % 2 or x.shape[2] % 2:
            break
        dim = dim - dim % cfg["heads"]
        x = _mobilevit_block(b, x, dim, layers, cfg["heads"], cfg["act"])
    x = conv(b, x, make_divisible(x.shape[-1] * 4), 1, act="swish")
    return [classifier(b, x, cfg["classes"])]


FAMILIES = {
    "vit": (sample_vit, build_vit),
    "mobilevit": (sample_mobilevit, build_mobilevit),
}
