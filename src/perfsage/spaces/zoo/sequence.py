"""Sequence models: recurrent cells unrolled as the int8 converter writes them, and TCNs.

* ``rnn``: LSTM (Hochreiter & Schmidhuber, 1997) or GRU (Cho et al., 2014) layers unrolled
  over 4-24 steps, the form an int8 model takes when the recurrent layer is unrolled
  before conversion (TFLite's fused int8 LSTM needs int16 activations on Ethos-U): per step
  FULLY_CONNECTED on the input and on the state, SPLIT into gates, LOGISTIC and TANH, MUL
  and ADD; hidden sizes up to 512, so weights reach megabytes.
* ``tcn``: temporal convolutional networks (Bai et al., 2018) over ``[1, T, C]`` features:
  the converter writes Conv1D as RESHAPE and CONV_2D with a 1xk kernel; causal dilated
  residual blocks (PAD on the left, dilation 1, 2, 4, ...), mean over time, classifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import choice
from perfsage.spaces.zoo.common import log_int

CLASSES = (2, 10, 12, 35)

# -- rnn ---------------------------------------------------------------------------------


def sample_rnn(rng: np.random.Generator) -> dict:
    """LSTM or GRU, 1-2 layers, 4-24 steps of 8-64 features, hidden 16-512."""
    return {"cell": choice(rng, ("lstm", "gru")), "steps": int(rng.integers(4, 25)),
            "features": log_int(rng, 8, 64), "hidden": 8 * log_int(rng, 2, 64),
            "layers": int(rng.integers(1, 3)), "classes": choice(rng, CLASSES)}


def _lstm_step(b: Any, x: Any, state: tuple | None, hidden: int) -> tuple:
    z = b.dense(x, 4 * hidden)
    if state is not None:
        z = b.add(z, b.dense(state[0], 4 * hidden, bias=False))
    i, f, g, o = b.split(z, 4, axis=1)
    i, f, g, o = b.logistic(i), b.logistic(f), b.tanh(g), b.logistic(o)
    c = b.mul(i, g) if state is None else b.add(b.mul(f, state[1]), b.mul(i, g))
    return b.mul(o, b.tanh(c)), c


def _gru_step(b: Any, x: Any, state: tuple | None, hidden: int) -> tuple:
    zx = b.dense(x, 3 * hidden)
    if state is None:  # h = 0: h' = (1 - z) * tanh(x part)
        z, _, n = b.split(zx, 3, axis=1)
        h = b.mul(b.add_const(b.mul_const(b.logistic(z), -1.0), 1.0), b.tanh(n))
        return h, None
    h_prev = state[0]
    zh = b.dense(h_prev, 3 * hidden)
    xz, xr, xn = b.split(zx, 3, axis=1)
    hz, hr, hn = b.split(zh, 3, axis=1)
    z = b.logistic(b.add(xz, hz))
    r = b.logistic(b.add(xr, hr))
    n = b.tanh(b.add(xn, b.mul(r, hn)))
    # h' = n + z * (h - n)
    return b.add(n, b.mul(z, b.sub(h_prev, n))), None


def build_rnn(b: Any, cfg: dict) -> list:
    """Input [1, T, F] split into steps, unrolled layers, last state to a classifier."""
    t, f, hdim = cfg["steps"], cfg["features"], cfg["hidden"]
    x = b.input((1, t, f))
    steps = [b.reshape(s, (1, f)) for s in b.split(x, t, axis=1)]
    step = _lstm_step if cfg["cell"] == "lstm" else _gru_step
    for _ in range(cfg["layers"]):
        state, outputs = None, []
        for s in steps:
            state = step(b, s, state, hdim)
            outputs.append(state[0])
        steps = outputs
    return [b.softmax(b.dense(steps[-1], cfg["classes"]))]


# -- tcn ---------------------------------------------------------------------------------

def sample_tcn(rng: np.random.Generator) -> dict:
    """32-500 steps, 1-40 features, 2-6 residual blocks, kernel 2-5, 16-256 channels."""
    return {"steps": log_int(rng, 32, 500), "features": log_int(rng, 1, 40),
            "blocks": int(rng.integers(2, 7)), "kernel": int(rng.integers(2, 6)),
            "channels": 8 * log_int(rng, 2, 32), "classes": choice(rng, CLASSES),
            "bn": choice(rng, ("folded", "post"))}


def _causal_conv(b: Any, x: Any, filters: int, kernel: int, dilation: int) -> Any:
    x = b.pad(x, [[0, 0], [0, 0], [(kernel - 1) * dilation, 0], [0, 0]])
    return b.conv2d(x, filters, (1, kernel), padding="valid", dilation=(1, dilation),
                    activation="relu")


def build_tcn(b: Any, cfg: dict) -> list:
    """Reshape to [1, 1, T, C], causal dilated residual blocks, mean over time, classifier."""
    t, c = cfg["steps"], cfg["channels"]
    x = b.input((1, t, cfg["features"]))
    x = b.reshape(x, (1, 1, t, cfg["features"]))
    for i in range(cfg["blocks"]):
        d = 2**i
        h = _causal_conv(b, x, c, cfg["kernel"], d)
        h = _causal_conv(b, h, c, cfg["kernel"], d)
        if cfg["bn"] == "post":
            h = b.batch_norm(h)
        short = x if x.shape[-1] == c else b.conv2d(x, c, 1)
        x = b.add(h, short, activation="relu")
    pooled = b.mean(b.reshape(x, (1, t, c)), axes=(1,), keepdims=False)
    return [b.softmax(b.dense(pooled, cfg["classes"]))]


FAMILIES = {
    "rnn": (sample_rnn, build_rnn),
    "tcn": (sample_tcn, build_tcn),
}
