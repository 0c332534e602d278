"""Random weights and int8 parameters chosen from estimated statistics.

Random weights make degenerate int8 models unless every scale is chosen with care. Weights
here are random int8 values with one symmetric scale per output channel, chosen so that each
output channel has unit mean square for the statistics of its input (what batch
normalisation gives a trained network). Activations therefore keep a stable magnitude
however deep the network is, and every requantisation ratio stays in the range the runtimes
accept (XNNPACK, for one, refuses ratios far from 1). Activation scales and zero points
follow from the estimated ranges of :mod:`perfsage.builder.estimate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfsage.builder.estimate import Stats

#: Narrowest range an activation may get: keeps scales far from degenerate (~1e-8) values.
MIN_SPAN = 1e-2
#: Floor on an input's estimated E[x^2] when scaling weights: an (almost) dead input, e.g.
#: a RELU whose channels are all negative, must not blow weight scales up.
MIN_MEAN_SQUARE = 1e-2
#: A depthwise channel is scaled for at least this fraction of the tensor's average E[x^2]:
#: normalising a nearly silent channel to unit size would amplify its quantisation noise,
#: and runtimes that round differently (XNNPACK, reference kernels) would drift apart.
MIN_CHANNEL_SHARE = 0.25
#: Spread (log-normal sigma) of per-channel gains and the std of biases, relative to 1.
GAIN_SPREAD = 0.25
BIAS_STD = 0.1
#: Output parameters TFLite mandates for int8 SOFTMAX and LOGISTIC.
PROBABILITY_PARAMS = (1.0 / 256.0, -128)

_SNAP = float(2**16)


def snap(x: np.ndarray | float) -> np.ndarray:
    """Round to 16 significant bits, as float32: the scales written to a model.

    NumPy's transcendental functions and BLAS may differ in the last bits between machines
    (SIMD paths, libraries); snapping makes such differences vanish before they reach the
    file (a difference flips a snapped value with probability ~1e-11), so models are
    byte-identical everywhere. 16 bits are far finer than int8 quantisation can tell.
    """
    mantissa, exponent = np.frexp(np.asarray(x, dtype=np.float64))
    return np.ldexp(np.round(mantissa * _SNAP) / _SNAP, exponent).astype(np.float32)


def affine_params(lo: float, hi: float) -> tuple[float, int]:
    """Per-tensor int8 scale and zero point covering ``[lo, hi]`` (and zero, exactly)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = max(hi - lo, MIN_SPAN)
    if hi - lo < MIN_SPAN:  # widen evenly around what there is
        hi = lo + span if lo < 0 else span
    scale = float(snap(span / 255.0))
    zero_point = int(np.clip(np.rint(-128.0 - lo / scale), -128, 127))
    return scale, zero_point


def random_int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random symmetric int8 weights in [-127, 127], triangular around zero.

    The difference of two uniform 7-bit values: cheap to draw (a MobileNetV2's worth in a
    few ms) and peaked at zero like trained weights, which matters for Vela's weight
    compression.
    """
    n = math.prod(shape)
    raw = np.frombuffer(rng.bytes(2 * n), dtype=np.uint8) & np.uint8(0x7F)
    return (raw[:n].view(np.int8) - raw[n:].view(np.int8)).reshape(shape)


@dataclass(frozen=True, slots=True)
class LinearLayer:
    """A random linear layer (conv, depthwise, dense) scaled for its input's statistics."""

    weights: np.ndarray  # int8, the layer's TFLite layout
    scales: np.ndarray  # float32 per output channel: real weight = scale * int8
    bias: np.ndarray  # float64 per output channel, real values
    mean: np.ndarray  # per output channel, before the activation
    std: np.ndarray
    gains: np.ndarray  # the root mean square each output channel was scaled for
    axis: int  # the output-channel axis of ``weights``

    def float_weights(self) -> np.ndarray:
        """Real-valued weights (float32) for models that are not quantised."""
        shape = [1] * self.weights.ndim
        shape[self.axis] = -1
        return self.weights.astype(np.float32) * self.scales.reshape(shape)


def _gains_and_bias(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    gains = np.exp(GAIN_SPREAD * rng.standard_normal(n))
    bias = BIAS_STD * rng.standard_normal(n)
    return gains, bias


def dense_like(rng: np.random.Generator, out_channels: int, kernel: tuple[int, ...],
               inp: Stats) -> LinearLayer:
    """Weights ``[out, *kernel, in]`` (CONV_2D, FULLY_CONNECTED) for input statistics ``inp``.

    Each output channel gets unit mean square (times a random gain): its scale is
    ``gain / sqrt(sum(q^2) * E[x^2])``. The per-channel mean follows exactly from the
    weights; the spread assumes independent inputs.
    """
    cin = inp.channels
    q = random_int8(rng, (out_channels, *kernel, cin))
    gains, bias = _gains_and_bias(rng, out_channels)
    flat = q.reshape(out_channels, -1, cin)
    q_sum = flat.sum(axis=1, dtype=np.int32)  # [out, in]
    q_sq = np.maximum(np.square(q, dtype=np.int16).reshape(out_channels, -1)
                      .sum(axis=1, dtype=np.int64), 1).astype(np.float64)
    e2 = max(float(inp.mean_square.mean()), MIN_MEAN_SQUARE)
    scales = snap(gains / np.sqrt(q_sq * e2))
    s = scales.astype(np.float64)
    mean = bias + s * np.einsum("oi,i->o", q_sum, inp.mean)  # not @: see estimate's notes
    std = s * np.sqrt(q_sq * float((inp.std**2).mean()))
    return LinearLayer(q, scales, bias, mean, std, gains, axis=0)


def depthwise(rng: np.random.Generator, kernel: tuple[int, int], multiplier: int,
              inp: Stats) -> LinearLayer:
    """Weights ``[1, kh, kw, in * multiplier]`` (DEPTHWISE_CONV_2D), channel by channel."""
    cout = inp.channels * multiplier
    q = random_int8(rng, (1, *kernel, cout))
    gains, bias = _gains_and_bias(rng, cout)
    flat = q.reshape(-1, cout)
    q_sum = flat.sum(axis=0, dtype=np.int32).astype(np.float64)
    q_sq = np.maximum(np.square(flat, dtype=np.int16).sum(axis=0, dtype=np.int64), 1)
    source = np.arange(cout) // multiplier  # input channel of each output channel
    floor = max(MIN_MEAN_SQUARE, MIN_CHANNEL_SHARE * float(inp.mean_square.mean()))
    e2 = np.maximum(inp.mean_square[source], floor)
    scales = snap(gains / np.sqrt(q_sq * e2))
    s = scales.astype(np.float64)
    mean = bias + s * q_sum * inp.mean[source]
    std = s * np.sqrt(q_sq) * inp.std[source]
    return LinearLayer(q, scales, bias, mean, std, gains, axis=3)


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """int32 bias with scale ``input_scale * weight_scale`` per channel, as TFLite requires."""
    scale = input_scale * weight_scales.astype(np.float64)
    q = np.rint(bias / scale)
    return np.clip(q, -(2**31) + 1, 2**31 - 1).astype(np.int32)
