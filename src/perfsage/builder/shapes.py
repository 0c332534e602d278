"""Argument checking and output-shape arithmetic, following TFLite's (and Keras') rules.

Every check raises :class:`~perfsage.errors.UsageError` with one message naming the layer,
so a search space that proposes an impossible layer learns why at the call that made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from perfsage.errors import UsageError

PADDINGS = ("same", "valid")


def fail(layer: str, problem: str) -> UsageError:
    """The error for an invalid argument of ``layer`` (raise the result)."""
    return UsageError(f"{layer}: {problem}")


def positive(layer: str, name: str, value: object) -> int:
    """A positive int argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(layer, f"{name} must be a positive integer, got {value!r}")
    return value


def pair(layer: str, name: str, value: object) -> tuple[int, int]:
    """An int or an (h, w) pair of positive ints, as (h, w)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise fail(layer, f"{name} must be an int or an (h, w) pair, got {value!r}")
        return positive(layer, name, value[0]), positive(layer, name, value[1])
    v = positive(layer, name, value)
    return v, v


def padding(layer: str, value: object) -> str:
    """'same' or 'valid'."""
    if value not in PADDINGS:
        raise fail(layer, f"padding must be 'same' or 'valid', got {value!r}")
    return value  # type: ignore[return-value]


def choice(layer: str, name: str, value: object, options: Sequence[object]) -> object:
    """One of a fixed set of values."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise fail(layer, f"unknown {name} {value!r}; choose one of {listed}")
    return value


def rank(layer: str, shape: tuple[int, ...], expected: int, hint: str = "") -> None:
    """The input must have ``expected`` dimensions."""
    if len(shape) != expected:
        raise fail(layer, f"needs a rank-{expected} input, got shape {shape}{hint}")


def window_output(layer: str, size: tuple[int, int], kernel: tuple[int, int],
                  stride: tuple[int, int], dilation: tuple[int, int], pad: str) -> tuple[int, int]:
    """Output (h, w) of a sliding window: ``ceil(in / stride)`` for 'same', else valid."""
    out = []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        span = (k - 1) * d + 1
        if pad == "same":
            out.append(math.ceil(n / s))
        elif span > n:
            raise fail(layer, f"window {kernel[0]}x{kernel[1]} (dilated span {span}) is larger "
                              f"than the {size[0]}x{size[1]} input with padding='valid'")
        else:
            out.append((n - span) // s + 1)
    return out[0], out[1]


def window_coverage(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], out: tuple[int, int]) -> float:
    """Fraction of a window's taps inside the input, not in 'same' zero padding.

    1.0 for 'valid'; statistics mix the input with that many zeros.
    """
    inside = 1.0
    for n, k, s, d, o in zip(size, kernel, stride, dilation, out, strict=True):
        span = (k - 1) * d + 1
        before = max((o - 1) * s + span - n, 0) // 2
        taps = np.arange(o)[:, None] * s - before + np.arange(k)[None, :] * d
        inside *= float(np.mean((taps >= 0) & (taps < n)))
    return inside


def axis(layer: str, value: object, ndim: int) -> int:
    """An axis in ``[-ndim, ndim)``, made non-negative."""
    if isinstance(value, bool) or not isinstance(value, int) or not -ndim <= value < ndim:
        raise fail(layer, f"axis {value!r} is out of range for a rank-{ndim} tensor")
    return value % ndim


def broadcast(layer: str, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``a op b``: equal, or one side 1 where they differ.

    The result must equal one operand's shape (one-sided broadcast, as Vela accepts it).
    """
    if len(a) != len(b) or any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        raise fail(layer, f"shapes {a} and {b} do not broadcast")
    out = tuple(max(x, y) for x, y in zip(a, b, strict=True))
    if out not in (a, b):
        raise fail(layer, f"shapes {a} and {b} broadcast both ways; one operand's shape must "
                          "be the result's")
    return out


def reshaped(layer: str, shape: tuple[int, ...], new: object) -> tuple[int, ...]:
    """The target shape of a reshape, with at most one -1 resolved."""
    if not isinstance(new, Sequence) or isinstance(new, str) or not new or any(
            isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1) for d in new):
        raise fail(layer, f"shape must be a sequence of positive ints (one may be -1), got {new!r}")
    total = math.prod(shape)
    unknown = [i for i, d in enumerate(new) if d == -1]
    known = math.prod(d for d in new if d != -1)
    if len(unknown) > 1 or (unknown and total % known) or (not unknown and known != total):
        raise fail(layer, f"cannot reshape {shape} ({total} elements) to {tuple(new)}")
    out = list(new)
    if unknown:
        out[unknown[0]] = total // known
    return tuple(out)
