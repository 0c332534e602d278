"""Quantisation without calibration data: estimated statistics in, int8 parameters out.

Random weights make degenerate int8 models unless every scale is chosen with care, and a
generated model has no representative data to calibrate on. Instead each activation tensor
carries an estimate of its values -- a mean and a standard deviation per channel (last
axis), propagated analytically from layer to layer -- and a range ``[lo, hi]`` from which
its int8 scale and zero point follow, as a converter's calibration would choose them.

Products use ``einsum`` rather than ``@``: multi-threaded BLAS gains nothing on these small
products and, on a busy machine, doubles the time a model takes to build.

Weights are random int8 values with one symmetric scale per output channel, chosen so that
each output channel has unit mean square (what batch normalisation gives a trained
network). Activations therefore keep a stable magnitude however deep the network is, and
every requantisation ratio stays in the range the runtimes accept (XNNPACK, for one,
refuses ratios far from 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

#: Half-width of an activation's quantisation range, in standard deviations.
RANGE_SIGMAS = 4.0
#: Narrowest range an activation may get: keeps scales far from degenerate (~1e-8) values.
MIN_SPAN = 1e-2
#: Floor on an input's estimated E[x^2] when scaling weights: an (almost) dead input, e.g.
#: a RELU whose channels are all negative, must not blow weight scales up.
MIN_MEAN_SQUARE = 1e-2
#: A depthwise channel is scaled for at least this fraction of the tensor's average E[x^2]:
#: normalising a nearly silent channel to unit size would amplify its quantisation noise,
#: and runtimes that round differently (XNNPACK, reference kernels) would drift apart.
MIN_CHANNEL_SHARE = 0.25
#: How well a channel's mean is known, relative to the typical magnitude of its values.
#: The estimates rest on Gaussian and independence assumptions; where a tensor hardly varies
#: (after a MEAN, on a 1x1 map) its range would hug an inexact mean, so ranges reach at least
#: ``RANGE_SIGMAS * MEAN_UNCERTAINTY * magnitude`` either side of it.
MEAN_UNCERTAINTY = 0.3
#: Spread (log-normal sigma) of per-channel gains and the std of biases, relative to 1.
GAIN_SPREAD = 0.25
BIAS_STD = 0.1
#: Correlation assumed between neighbouring values when averaging (pools, MEAN): an average
#: of n values keeps ``sqrt(rho + (1 - rho) / n)`` of their spread.
SPATIAL_CORRELATION = 0.02
#: Output parameters TFLite mandates for int8 SOFTMAX and LOGISTIC.
PROBABILITY_PARAMS = (1.0 / 256.0, -128)

_SNAP = float(2**16)

# Gauss-Hermite rule: E[f(X)] for X ~ N(m, s^2) as sum(w * f(m + s * x)).
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(32)
_NODES = _NODES * math.sqrt(2.0)
_WEIGHTS = _WEIGHTS / math.sqrt(math.pi)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


#: Element-wise functions by activation name, as the runtimes define them.
ACTIVATIONS: dict[str | None, Callable[[np.ndarray], np.ndarray]] = {
    None: lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "logistic": _sigmoid,
    "hard_swish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
}


#: Activations that commute with taking a maximum.
_MONOTONE = (None, "relu", "relu6", "logistic")


@dataclass(frozen=True, slots=True)
class Gaussian:
    """Values known to be ``activation(N(mean, std))``, per channel."""

    mean: np.ndarray
    std: np.ndarray
    activation: str | None


@dataclass(frozen=True, slots=True)
class Stats:
    """Estimated values of an activation tensor.

    ``mean`` and ``std`` are per channel (the last axis) and describe variation over
    positions and inputs; ``lo``/``hi`` is the range int8 quantisation must cover.
    ``source``, when known, is the Gaussian the values are an activation of: a rectified
    Gaussian's tail is the Gaussian's, which matters for maxima.
    """

    mean: np.ndarray
    std: np.ndarray
    lo: float
    hi: float
    source: Gaussian | None = None

    @property
    def channels(self) -> int:
        """Number of channels described."""
        return int(self.mean.shape[0])

    @property
    def mean_square(self) -> np.ndarray:
        """E[x^2] per channel."""
        return self.mean**2 + self.std**2

    def with_range(self, lo: float, hi: float) -> Stats:
        """The same moments with another quantisation range."""
        return Stats(self.mean, self.std, lo, hi, self.source)

    def pooled(self) -> tuple[float, float]:
        """Mean and std of all channels taken together (a mixture)."""
        m = float(self.mean.mean())
        var = float(self.mean_square.mean()) - m * m
        return m, math.sqrt(max(var, 0.0))

    def as_channels(self, n: int) -> Stats:
        """Statistics for a last axis of ``n``: tiled when ``n`` is a multiple, else pooled."""
        if n == self.channels:
            return self
        if n % self.channels == 0:
            reps = n // self.channels
            src = self.source
            if src is not None:
                src = Gaussian(np.tile(src.mean, reps), np.tile(src.std, reps), src.activation)
            return Stats(np.tile(self.mean, reps), np.tile(self.std, reps), self.lo, self.hi, src)
        m, s = self.pooled()
        return Stats(np.full(n, m), np.full(n, s), self.lo, self.hi)


def uniform_input(channels: int, lo: float = -1.0, hi: float = 1.0) -> Stats:
    """Statistics of a model input drawn uniformly from ``[lo, hi]``."""
    mean = np.full(channels, (lo + hi) / 2)
    std = np.full(channels, (hi - lo) / math.sqrt(12.0))
    return Stats(mean, std, lo, hi)


def spread_range(mean: np.ndarray, std: np.ndarray,
                 magnitude: np.ndarray | float = 0.0) -> tuple[float, float]:
    """The range covering ``RANGE_SIGMAS`` deviations around every channel's mean.

    ``magnitude`` is the values' typical size, which bounds the error of the mean from below
    (see ``MEAN_UNCERTAINTY``).
    """
    half = RANGE_SIGMAS * np.maximum(std, MEAN_UNCERTAINTY * np.asarray(magnitude))
    return float(np.min(mean - half)), float(np.max(mean + half))


def activate(mean: np.ndarray, std: np.ndarray, activation: str | None,
             lo: float | None = None, hi: float | None = None,
             magnitude: np.ndarray | float = 0.0) -> Stats:
    """Statistics after an element-wise function of approximately Gaussian values.

    Moments come from Gauss-Hermite quadrature; the range is the function's image of
    ``[lo, hi]`` (default: :func:`spread_range` of the values).
    """
    f = ACTIVATIONS[activation]
    std = np.maximum(std, 0.0)
    if lo is None or hi is None:
        lo, hi = spread_range(mean, std, magnitude)
    source = Gaussian(mean, std, activation)
    if activation is None:
        return Stats(mean, std, lo, hi, source)
    m, s = _moments(mean, std, f)
    grid = f(np.append(np.linspace(lo, hi, 129), [-1.5] if lo < -1.5 < hi else []))
    return Stats(m, s, float(grid.min()), float(grid.max()), source)


def _moments(mean: np.ndarray, std: np.ndarray,
             f: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of ``f(X)``, X ~ N(mean, std^2), per channel (Gauss-Hermite)."""
    samples = f(mean[:, None] + std[:, None] * _NODES[None, :])
    m = np.einsum("cn,n->c", samples, _WEIGHTS)
    return m, np.sqrt(np.maximum(np.einsum("cn,n->c", samples**2, _WEIGHTS) - m**2, 0.0))


def averaged(stats: Stats, n: int) -> Stats:
    """Statistics of averages over ``n`` neighbouring values of each channel (range kept)."""
    keep = math.sqrt(SPATIAL_CORRELATION + (1.0 - SPATIAL_CORRELATION) / max(n, 1))
    return Stats(stats.mean, stats.std * keep, stats.lo, stats.hi)


@cache
def _normal_max(n: int) -> tuple[float, float]:
    """Mean and std of the largest of ``n`` standard normal values (numerically)."""
    x = np.linspace(-10.0, 10.0, 4001)
    dx = x[1] - x[0]
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    cdf = np.minimum(np.cumsum(pdf) * dx, 1.0)
    density = n * pdf * cdf ** (n - 1) * dx
    mean = float(x @ density)
    return mean, math.sqrt(max(float((x * x) @ density) - mean * mean, 0.0))


def maxed(stats: Stats, n: int) -> Stats:
    """Statistics of maxima over ``n`` neighbouring values of each channel (range kept).

    Exact for activations of Gaussians (the maximum commutes with monotone activations),
    a Gaussian approximation otherwise.
    """
    shift, spread = _normal_max(max(n, 1))
    src = stats.source
    if src is None or src.activation not in _MONOTONE:
        return Stats(stats.mean + shift * stats.std, stats.std * spread, stats.lo, stats.hi)
    src = Gaussian(src.mean + shift * src.std, src.std * spread, src.activation)
    m, s = _moments(src.mean, src.std, ACTIVATIONS[src.activation])
    return Stats(m, s, stats.lo, stats.hi, src)


def mean_stats(stats: Stats, n: int) -> Stats:
    """Statistics of a MEAN over ``n`` values per channel, with its own (narrower) range."""
    out = averaged(stats, n)
    lo, hi = spread_range(out.mean, out.std, np.sqrt(stats.mean_square))
    return out.with_range(max(lo, stats.lo), min(hi, stats.hi))


def padded(stats: Stats, kept_fraction: float) -> Stats:
    """Statistics after zero padding: a mixture of the values and zeros (range kept)."""
    m = stats.mean * kept_fraction
    var = np.maximum(stats.mean_square * kept_fraction - m**2, 0.0)
    return Stats(m, np.sqrt(var), stats.lo, stats.hi)


def mixed(parts: list[Stats], weights: list[float]) -> Stats:
    """Statistics of a tensor made of pieces of others (same channel count), range united."""
    total = sum(weights)
    m = sum(w * p.mean for p, w in zip(parts, weights, strict=True)) / total
    e2 = sum(w * p.mean_square for p, w in zip(parts, weights, strict=True)) / total
    std = np.sqrt(np.maximum(e2 - m**2, 0.0))
    return Stats(m, std, min(p.lo for p in parts), max(p.hi for p in parts))


def concatenated(parts: list[Stats]) -> Stats:
    """Statistics of a channel-wise concatenation, range united."""
    sources = [p.source for p in parts]
    source = None
    if all(sources) and len({src.activation for src in sources}) == 1:
        source = Gaussian(np.concatenate([src.mean for src in sources]),
                          np.concatenate([src.std for src in sources]), sources[0].activation)
    return Stats(np.concatenate([p.mean for p in parts]), np.concatenate([p.std for p in parts]),
                 min(p.lo for p in parts), max(p.hi for p in parts), source)


def added(a: Stats, b: Stats, activation: str | None) -> Stats:
    """Statistics of ``a + b`` (independent operands), then the fused activation."""
    mean = a.mean + b.mean
    std = np.sqrt(a.std**2 + b.std**2)
    lo, hi = spread_range(mean, std, np.sqrt(a.mean_square + b.mean_square))
    return activate(mean, std, activation, max(lo, a.lo + b.lo), min(hi, a.hi + b.hi))


def multiplied(a: Stats, b: Stats, activation: str | None) -> Stats:
    """Statistics of ``a * b`` (independent operands), then the fused activation."""
    mean = a.mean * b.mean
    std = np.sqrt(np.maximum(a.mean_square * b.mean_square - mean**2, 0.0))
    corners = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
    lo, hi = spread_range(mean, std, np.sqrt(a.mean_square * b.mean_square))
    return activate(mean, std, activation, max(lo, min(corners)), min(hi, max(corners)))


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
    mean = bias + s * np.einsum("oi,i->o", q_sum, inp.mean)
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
