"""Reference architectures written with the builder: MobileNetV2 and a keyword-spotting DS-CNN."""

from __future__ import annotations

from perfsage.builder import ModelBuilder

# MobileNetV2 inverted-residual settings: expansion, channels, repeats, first stride.
_MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(seed: int = 0, dtype: str = "int8", size: int = 224,
                 classes: int = 1000) -> bytes:
    """MobileNetV2 1.0 (3.5 M parameters, 65 operators at 224x224)."""
    b = ModelBuilder(seed=seed, dtype=dtype)
    x = b.conv2d(b.input((1, size, size, 3)), 32, 3, stride=2, activation="relu6")
    cin = 32
    for t, c, n, s in _MOBILENET_V2:
        for i in range(n):
            stride = s if i == 0 else 1
            h = b.conv2d(x, cin * t, 1, activation="relu6") if t != 1 else x
            h = b.depthwise_conv2d(h, 3, stride=stride, activation="relu6")
            h = b.conv2d(h, c, 1)
            x = b.add(x, h) if stride == 1 and cin == c else h
            cin = c
    x = b.conv2d(x, 1280, 1, activation="relu6")
    x = b.mean(x, (1, 2), keepdims=False)
    return b.build([b.softmax(b.dense(x, classes))])


def ds_cnn(seed: int = 0, dtype: str = "int8") -> bytes:
    """DS-CNN-S keyword spotting (MLPerf Tiny): 49x10 MFCC in, 12 classes out."""
    b = ModelBuilder(seed=seed, dtype=dtype)
    x = b.conv2d(b.input((1, 49, 10, 1)), 64, (10, 4), stride=2, activation="relu")
    for _ in range(4):
        x = b.depthwise_conv2d(x, 3, activation="relu")
        x = b.conv2d(x, 64, 1, activation="relu")
    x = b.avg_pool(x, x.shape[1:3], stride=1)
    x = b.reshape(x, (1, -1))
    return b.build([b.softmax(b.dense(x, 12))])
