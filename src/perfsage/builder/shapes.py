"""Argument checking and output-shape arithmetic, following TFLite's (and Keras') rules.

Every check raises :class:`~perfsage.errors.UsageError` with one message naming the layer,
so a search space that proposes an impossible layer learns why at the call that made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np

from perfsage.errors import UsageError

PADDINGS = ("same", "valid")


def fail(layer: str, problem: str) -> UsageError:
    """The error for an invalid argument of ``layer`` (raise the result)."""
    return UsageError(f"{layer}: {problem}")


def is_sequence(value: object) -> bool:
    """A list, tuple or 1-D array (not a string)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1
    return isinstance(value, Sequence) and not isinstance(value, str)


def integer(value: object) -> int | None:
    """``value`` as an int if it is one (NumPy integers included, bools not), else None."""
    if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return None


def positive(layer: str, name: str, value: object) -> int:
    """A positive int argument."""
    v = integer(value)
    if v is None or v < 1:
        raise fail(layer, f"{name} must be a positive integer, got {value!r}")
    return v


def dims(layer: str, name: str, value: object, unknown: bool = False) -> tuple[int, ...]:
    """A non-empty shape of positive ints (and -1 where ``unknown`` allows it)."""
    out = None
    if is_sequence(value) and len(value) > 0:  # type: ignore[arg-type]
        out = tuple(integer(d) for d in value)  # type: ignore[attr-defined]
    if out is None or any(d is None or (d < 1 and not (unknown and d == -1)) for d in out):
        extra = " (one may be -1)" if unknown else ""
        raise fail(layer, f"{name} must be a sequence of positive ints{extra}, got {value!r}")
    return out  # type: ignore[return-value]


def pair(layer: str, name: str, value: object) -> tuple[int, int]:
    """An int or an (h, w) pair of positive ints, as (h, w)."""
    if is_sequence(value):
        if len(value) != 2:  # type: ignore[arg-type]
            raise fail(layer, f"{name} must be an int or an (h, w) pair, got {value!r}")
        return positive(layer, name, value[0]), positive(layer, name, value[1])
    v = positive(layer, name, value)
    return v, v


def padding(layer: str, value: object) -> str:
    """'same' or 'valid'."""
    return choice(layer, "padding", value, PADDINGS)  # type: ignore[return-value]


def choice(layer: str, name: str, value: object, options: Sequence[object]) -> object:
    """One of a fixed set of values, returned as the option itself (NumPy strings match)."""
    for option in options:
        if value is option or (isinstance(value, str) and value == option):
            return option
    listed = ", ".join(repr(o) for o in options)
    raise fail(layer, f"unknown {name} {value!r}; choose one of {listed}")


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
    v = integer(value)
    if v is None or not -ndim <= v < ndim:
        raise fail(layer, f"axis {value!r} is out of range for a rank-{ndim} tensor")
    return v % ndim


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


def reshaped(layer: str, shape: tuple[int, ...], value: object) -> tuple[int, ...]:
    """The target shape of a reshape, with at most one -1 resolved."""
    new = dims(layer, "shape", value, unknown=True)
    total = math.prod(shape)
    unknown = [i for i, d in enumerate(new) if d == -1]
    known = math.prod(d for d in new if d != -1)
    if len(unknown) > 1 or (unknown and total % known) or (not unknown and known != total):
        raise fail(layer, f"cannot reshape {shape} ({total} elements) to {tuple(new)}")
    out = list(new)
    if unknown:
        out[unknown[0]] = total // known
    return tuple(out)
