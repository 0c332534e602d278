"""Building blocks shared by several search spaces (MobileNetV2 / EfficientNet-Lite style)."""

from __future__ import annotations

from typing import Any

from perfsage.spaces.base import make_divisible


def conv_act(b: Any, x: Any, filters: int, kernel: int | tuple = 1, stride: int = 1,
             act: str | None = "relu6") -> Any:
    """Convolution then activation; hard_swish is a separate op, relu/relu6 are fused."""
    if act == "hard_swish":
        return b.hard_swish(b.conv2d(x, filters, kernel=kernel, stride=stride))
    return b.conv2d(x, filters, kernel=kernel, stride=stride, activation=act)


def depthwise_act(b: Any, x: Any, kernel: int, stride: int, act: str | None) -> Any:
    """Depthwise convolution then activation, fused where TFLite can fuse it."""
    if act == "hard_swish":
        return b.hard_swish(b.depthwise_conv2d(x, kernel=kernel, stride=stride))
    return b.depthwise_conv2d(x, kernel=kernel, stride=stride, activation=act)


def squeeze_excite(b: Any, x: Any, reduce_from: int) -> Any:
    """Squeeze-and-excitation (Hu et al., 2018) as MobileNetV3 places it: a channel gate."""
    channels = x.shape[-1]
    s = b.mean(x, axes=(1, 2), keepdims=True)
    s = b.conv2d(s, make_divisible(reduce_from / 4), kernel=1, activation="relu")
    s = b.logistic(b.conv2d(s, channels, kernel=1))
    return b.mul(x, s)


def inverted_residual(b: Any, x: Any, out_channels: int, expand: int, kernel: int,
                      stride: int, se: bool, act: str) -> Any:
    """MobileNetV2 block (Sandler et al., 2018): expand 1x1, depthwise, project 1x1, add."""
    in_channels = x.shape[-1]
    h = conv_act(b, x, in_channels * expand, act=act) if expand != 1 else x
    h = depthwise_act(b, h, kernel, stride, act)
    if se:
        h = squeeze_excite(b, h, in_channels)
    h = b.conv2d(h, out_channels, kernel=1)  # linear bottleneck: no activation
    if stride == 1 and in_channels == out_channels:
        h = b.add(h, x)
    return h
