"""Random networks over the whole layer vocabulary, for fuzzing the builder.

Architectures are drawn from their own generator so that a seed names one network; the
builder's weights come from the same seed. Only layers Vela runs on the NPU are drawn
unless ``cpu_layers`` is set (DEPTH_TO_SPACE, odd resize factors).
"""

from __future__ import annotations

import numpy as np

from perfsage.builder import ModelBuilder, TensorRef

ACTS = [None, "relu", "relu6"]


def _conv(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    h, w = x.shape[1:3]
    k = int(rng.choice([1, 3, 5]))
    stride = int(rng.choice([1, 2])) if min(h, w) >= 4 else 1
    pad = "valid" if min(h, w) >= k + 2 and rng.random() < 0.3 else "same"
    filters = int(rng.choice([4, 8, 16, 24, 32, 64]))
    return b.conv2d(x, filters, k, stride=stride, padding=pad, activation=rng.choice(ACTS))


def _depthwise(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    stride = int(rng.choice([1, 2])) if min(x.shape[1:3]) >= 4 else 1
    dilation = 2 if stride == 1 and rng.random() < 0.2 else 1
    return b.depthwise_conv2d(x, int(rng.choice([3, 5])), stride=stride, dilation=dilation,
                              activation=rng.choice(ACTS))


def _inverted_residual(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    c = x.shape[3]
    h = b.conv2d(x, c * int(rng.choice([2, 4, 6])), 1, activation="relu6")
    h = b.depthwise_conv2d(h, 3, activation="relu6")
    h = b.conv2d(h, c, 1)
    return b.add(x, h, activation=rng.choice([None, "relu"]))


def _squeeze_excite(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    c = x.shape[3]
    g = b.mean(x, (1, 2), keepdims=True)
    g = b.conv2d(g, max(c // 4, 1), 1, activation="relu")
    g = b.conv2d(g, c, 1)
    g = b.logistic(g) if rng.random() < 0.5 else b.hard_swish(g)
    return b.mul(x, g)


def _branches(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    c = x.shape[3]
    a = b.conv2d(x, c, 1, activation="relu")
    d = b.conv2d(x, int(rng.choice([4, 8, 16])), 3, activation="relu6")
    return b.concat([a, d] if rng.random() < 0.5 else [x, d])


def _pool(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    if min(x.shape[1:3]) < 4:
        return b.relu(x)
    pool = b.avg_pool if rng.random() < 0.5 else b.max_pool
    return pool(x, int(rng.choice([2, 3])), stride=2, padding=rng.choice(["same", "valid"]))


def _reshape_pad(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    x = b.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return b.conv2d(x, x.shape[3], 3, padding="valid", activation="relu")


def _upsample(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    h, w = x.shape[1:3]
    if h * w > 256:
        return b.relu6(x)
    return b.resize(x, (2 * h, 2 * w), method=rng.choice(["nearest", "bilinear"]))


def _activation(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    return getattr(b, str(rng.choice(["relu", "relu6", "hard_swish", "logistic"])))(x)


def _depth_to_space(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    if x.shape[3] % 4:
        x = b.conv2d(x, 4 * max(x.shape[3] // 4, 1), 1)
    return b.depth_to_space(x, 2)


def _odd_resize(b: ModelBuilder, x: TensorRef, rng: np.random.Generator) -> TensorRef:
    h, w = x.shape[1:3]
    return b.resize(x, (h + h // 2 + 1, w + w // 2 + 1))


BLOCKS = [_conv, _conv, _depthwise, _inverted_residual, _squeeze_excite, _branches, _pool,
          _reshape_pad, _upsample, _activation]
CPU_BLOCKS = [_depth_to_space, _odd_resize]


def random_net(seed: int, dtype: str = "int8", cpu_layers: bool = False) -> bytes:
    """One random network: a stem, 3-10 blocks and a random head."""
    rng = np.random.default_rng([seed, 1])
    b = ModelBuilder(seed=seed, dtype=dtype)
    size = int(rng.choice([8, 16, 24, 32, 49]))
    x = b.input((1, size, int(rng.choice([10, size])), int(rng.choice([1, 3, 8]))))
    x = b.conv2d(x, int(rng.choice([8, 16])), 3, activation="relu")
    blocks = BLOCKS + (CPU_BLOCKS if cpu_layers else [])
    for _ in range(int(rng.integers(3, 11))):
        x = blocks[int(rng.integers(len(blocks)))](b, x, rng)
    head = int(rng.integers(3))
    if head == 0:
        x = b.mean(x, (1, 2), keepdims=False)
        x = b.softmax(b.dense(x, int(rng.choice([2, 10, 100, 1000]))))
    elif head == 1:
        x = b.reshape(b.avg_pool(x, x.shape[1:3], stride=1), (1, -1))
        x = b.dense(x, int(rng.choice([1, 12])), activation=rng.choice(ACTS))
    else:
        x = b.conv2d(x, 4, 1)
    return b.build([x])
