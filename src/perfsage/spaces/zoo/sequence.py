"""Sequence models: recurrent cells unrolled as the int8 converter writes them, and TCNs.

* ``rnn``: LSTM (Hochreiter & Schmidhuber, 1997) or GRU (Cho et al., 2014) layers unrolled
  over 4-24 steps, the form an int8 model takes when the recurrent layer is unrolled
  before conversion (TFLite's fused int8 LSTM needs int16 activations on Ethos-U): RESHAPE
  and UNPACK into steps, per step FULLY_CONNECTED on the input and on the state, SPLIT (or
  STRIDED_SLICE) into gates, LOGISTIC and TANH, MUL, ADD and SUB, in the order TensorFlow's
  converter writes Keras' unrolled LSTM and GRU; hidden sizes up to 512, so weights reach
  megabytes.
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


def _lstm_step(b: Any, x: Any, state: tuple | None, hidden: int, rng: Any) -> tuple:
    """One LSTM step in the converter's order (gates i, f, g, o; no forget gate at step 0)."""
    if state is None:  # h = c = 0
        i, _, g, o = b.split(b.dense(x, 4 * hidden), 4, axis=1)
        i, o, g = b.logistic(i), b.logistic(o), b.tanh(g)
        c = b.mul(i, g)
        return b.mul(o, b.tanh(c)), c
    h, c = state
    zh = b.dense(h, 4 * hidden, bias=False)
    i, f, g, o = b.split(b.add(b.dense(x, 4 * hidden), zh), 4, axis=1)
    i, f = b.logistic(i), b.logistic(f)
    kept = b.mul(f, c)
    o, g = b.logistic(o), b.tanh(g)
    c = b.add(kept, b.mul(i, g))
    return b.mul(o, b.tanh(c)), c


def _gru_step(b: Any, x: Any, state: tuple | None, hidden: int, rng: Any) -> tuple:
    """One GRU step (Keras' reset-after form) in the converter's order: the recurrent
    projection sliced by STRIDED_SLICE, ``1 - z`` as a SUB from a constant."""
    xz, xr, xh = b.split(b.dense(x, 3 * hidden), 3, axis=1)
    if state is None:  # h = 0: only the recurrent biases remain
        bias = 0.1 * rng.standard_normal((3, hidden))
        z = b.logistic(b.add_const(xz, bias[0]))
        keep = b.sub_const(z, 1.0, reverse=True)
        r = b.logistic(b.add_const(xr, bias[1]))
        cand = b.tanh(b.add(xh, b.mul_const(r, bias[2])))
        return b.mul(keep, cand), None
    h = state[0]
    zh = b.dense(h, 3 * hidden)
    hz, hr, hh = (b.strided_slice(zh, (0, k * hidden), (1, (k + 1) * hidden)) for k in range(3))
    z = b.logistic(b.add(xz, hz))
    zh_prev = b.mul(z, h)
    keep = b.sub_const(z, 1.0, reverse=True)
    r = b.logistic(b.add(xr, hr))
    cand = b.tanh(b.add(xh, b.mul(r, hh)))
    return b.add(zh_prev, b.mul(keep, cand)), None


def build_rnn(b: Any, cfg: dict) -> list:
    """Input [1, T, F] unpacked into steps, unrolled layers, last state to a classifier."""
    t, f, hdim = cfg["steps"], cfg["features"], cfg["hidden"]
    x = b.input((1, t, f))
    steps = list(b.unpack(b.reshape(x, (t, 1, f)), axis=0))
    step = _lstm_step if cfg["cell"] == "lstm" else _gru_step
    rng = np.random.default_rng(cfg["seed"])
    for _ in range(cfg["layers"]):
        state, outputs = None, []
        for s in steps:
            state = step(b, s, state, hdim, rng)
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
