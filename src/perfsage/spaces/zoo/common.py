"""Pieces every zoo family draws from: widths, input preprocessing, activations, heads.

Families record their choices in the config (so a config says which model was built) and
call these helpers on a :class:`~perfsage.builder.ModelBuilder` when they build.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from perfsage.spaces.base import choice, make_divisible

#: Input preprocessing a Keras model carries into TFLite: none (folded into the first
#: convolution, or done before the model), ``Normalization`` (SUB and MUL by per-channel
#: constants, which the converter keeps) or ``Rescaling(1 / 127.5, offset=-1)`` (MUL and
#: ADD by one value each on the whole input, as Keras' MobileNetV3 keeps them).
RESCALING = (None, None, "normalize", "rescale")


def log_int(rng: np.random.Generator, lo: float, hi: float) -> int:
    """An integer log-uniform in ``[lo, hi]``: small and large equally likely per octave."""
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def channels(rng: np.random.Generator, lo: float, hi: float, divisor: int = 8) -> int:
    """Log-uniform channels, rounded to a multiple of ``divisor`` as real networks are."""
    return make_divisible(log_int(rng, lo, hi), divisor)


def resolution(rng: np.random.Generator, small: tuple[int, ...], large: tuple[int, ...],
               p_large: float = 0.15) -> int:
    """A small input most of the time (labels cost per pixel), a real-size one sometimes."""
    return choice(rng, large if rng.random() < p_large else small)


def preprocess(b: Any, x: Any, kind: str | None) -> Any:
    """The input layer's constants, as the converter leaves them."""
    if kind == "normalize":  # Keras Normalization: (x - mean) / std per channel
        c = x.shape[-1]
        mean = np.linspace(-0.1, 0.1, c)
        return b.mul_const(b.sub_const(x, mean), 1.0 / np.linspace(0.45, 0.6, c))
    if kind == "rescale":  # Keras Rescaling: x * scale + offset, one value each
        return b.add_const(b.mul_const(x, 1.0 / 127.5), -1.0)
    return x


def activation(b: Any, x: Any, kind: str | None) -> Any:
    """An activation as its own operator(s): what follows an unfused layer."""
    if kind is None:
        return x
    if kind == "swish":  # x * sigmoid(x): LOGISTIC and MUL
        return b.mul(x, b.logistic(x))
    if kind == "gelu":
        return b.gelu(x)
    if kind == "gelu_decomposed":
        return b.gelu_decomposed(x)
    return getattr(b, kind)(x)  # relu, relu6, hard_swish, tanh


def conv(b: Any, x: Any, filters: int, kernel: int | tuple = 3, stride: int = 1,
         act: str | None = "relu", bn: str = "folded", padding: str = "same") -> Any:
    """Convolution, batch normalisation and activation in one of three orders.

    ``folded``: Conv-BN-act, the BN folded into the convolution and ReLU/ReLU6 fused.
    ``post``: Conv-act-BN (a common Keras ordering): the BN stays as MUL and ADD.
    """
    fusable = act in ("relu", "relu6")
    y = b.conv2d(x, filters, kernel=kernel, stride=stride, padding=padding,
                 activation=act if fusable else None)
    if not fusable:
        y = activation(b, y, act)
    return b.batch_norm(y) if bn == "post" else y


def squeeze_excite(b: Any, x: Any, squeeze: int, gate: str, act: str = "relu") -> Any:
    """Squeeze-and-excitation (Hu et al., 2018) with a sigmoid or hard-sigmoid gate."""
    s = b.mean(x, axes=(1, 2), keepdims=True)
    s = conv(b, s, max(8, squeeze), kernel=1, act=act)
    if gate == "hard_sigmoid":  # relu6(conv + 3) / 6: the +3 folded, the RELU6 fused
        s = b.mul_const(b.conv2d(s, x.shape[-1], kernel=1, activation="relu6", shift=3.0),
                        1.0 / 6.0)
    else:
        s = b.logistic(b.conv2d(s, x.shape[-1], kernel=1))
    return b.mul(x, s)


def classifier(b: Any, x: Any, classes: int, hidden: int = 0, act: str = "relu") -> Any:
    """Global average pooling, an optional hidden dense layer, dense to classes, softmax."""
    h = b.mean(x, axes=(1, 2), keepdims=False)
    if hidden:
        h = b.dense(h, hidden, activation=act if act in ("relu", "relu6") else None)
        if act not in ("relu", "relu6"):
            h = activation(b, h, act)
    return b.softmax(b.dense(h, classes))


def channel_shuffle(b: Any, x: Any, groups: int) -> Any:
    """ShuffleNet's channel shuffle as the converter writes it: RESHAPE, TRANSPOSE, RESHAPE."""
    _, h, w, c = x.shape
    y = b.reshape(x, (1, h, w, groups, c // groups))
    y = b.transpose(y, (0, 1, 2, 4, 3))
    return b.reshape(y, (1, h, w, c))
