"""Estimated values of activation tensors, propagated from layer to layer without data.

A generated model has no representative data to calibrate its int8 ranges on. Instead each
activation tensor carries :class:`Stats`: a mean and a standard deviation per channel (the
last axis) and the range ``[lo, hi]`` a converter's calibration would find, propagated
analytically through every layer: moments of activations by Gauss-Hermite quadrature,
maxima by order statistics, averages with a little spatial correlation, zero padding as a
mixture with zeros.

Products use ``einsum`` rather than ``@``: multi-threaded BLAS gains nothing on these small
products and, on a busy machine, doubles the time a model takes to build.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

#: Half-width of an activation's quantisation range, in standard deviations.
RANGE_SIGMAS = 4.0
#: How well a channel's mean is known, relative to the typical magnitude of its values.
#: The estimates rest on Gaussian and independence assumptions; where a tensor hardly varies
#: (after a MEAN, on a 1x1 map) its range would hug an inexact mean, so ranges reach at least
#: ``RANGE_SIGMAS * MEAN_UNCERTAINTY * magnitude`` either side of it.
MEAN_UNCERTAINTY = 0.3
#: Correlation assumed between neighbouring values when averaging (pools, MEAN): an average
#: of n values keeps ``sqrt(rho + (1 - rho) / n)`` of their spread.
SPATIAL_CORRELATION = 0.02

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
    "tanh": np.tanh,
    # GELU's tanh form; it stays within 1e-3 of the erf form the runtimes compute.
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3))),
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


def subtracted(a: Stats, b: Stats, activation: str | None) -> Stats:
    """Statistics of ``a - b`` (independent operands), then the fused activation."""
    negated = Stats(-b.mean, b.std, -b.hi, -b.lo)
    return added(a, negated, activation)


def squared_difference(a: Stats, b: Stats) -> Stats:
    """Statistics of ``(a - b)^2`` for a Gaussian difference (non-central chi-square)."""
    d = subtracted(a, b, None)
    m2 = d.mean**2
    mean = m2 + d.std**2
    std = np.sqrt(2.0 * d.std**4 + 4.0 * m2 * d.std**2)
    _, hi = spread_range(mean, std, mean)
    bound = max(d.lo**2, d.hi**2)
    return Stats(mean, std, 0.0, min(hi, bound))


def reciprocal_sqrt(stats: Stats, floor: float) -> Stats:
    """Statistics of ``1 / sqrt(x)`` for positive ``x`` (RSQRT), never below ``floor``.

    The range follows the values' own spread, not their quantisation range: that range
    reaches zero, where the function has no bound, but a variance plus epsilon never does.
    """
    lo_in = np.maximum(stats.mean - RANGE_SIGMAS * stats.std, np.maximum(stats.mean / 8, floor))
    hi_in = np.maximum(stats.mean + RANGE_SIGMAS * stats.std, lo_in)
    mean = 1.0 / np.sqrt(np.maximum(stats.mean, floor))
    std = 0.5 * stats.std * np.maximum(stats.mean, floor) ** -1.5
    return Stats(mean, std, float(np.min(1.0 / np.sqrt(hi_in))),
                 float(np.max(1.0 / np.sqrt(lo_in))))


def matmul(a: Stats, b: Stats, depth: int, out_channels: int) -> Stats:
    """Statistics of a product of matrices summing ``depth`` independent terms.

    ``a`` is pooled over its channels; ``b`` keeps its per-channel statistics when its
    channels are the output's columns, and is pooled otherwise.
    """
    ma, sa = a.pooled()
    ea2 = ma * ma + sa * sa
    if b.channels == out_channels:
        mb, eb2 = b.mean, b.mean_square
    else:
        m, s = b.pooled()
        mb, eb2 = np.full(out_channels, m), np.full(out_channels, m * m + s * s)
    mean = depth * ma * mb
    std = np.sqrt(np.maximum(depth * (ea2 * eb2 - (ma * mb) ** 2), 0.0))
    lo, hi = spread_range(mean, std, np.sqrt(depth * ea2 * eb2))
    return Stats(mean, std, lo, hi)
