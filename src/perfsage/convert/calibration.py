"""Samples for post-training quantisation: the user's own, or random ones.

Full-integer quantisation needs each activation's range, which the quantisers measure by
running the float model on representative inputs (TensorFlow's ``representative_dataset``,
AI Edge Quantizer's calibration in the LiteRT interpreter). Latency, memory and energy on
an NPU depend on the operators and shapes, not on these ranges, so random samples give the
same cost figures as real data; accuracy of the quantised model does depend on them, hence
``--calibration``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfsage.errors import UsageError

#: Random samples drawn when the user gives none.
RANDOM_SAMPLES = 8


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, shape (dynamic sizes already fixed) and NumPy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


def fixed_shape(shape, *, default: int = 1) -> tuple[int, ...]:
    """A shape with each unknown or dynamic size (None, -1, 0, a symbol) set to ``default``."""
    return tuple(int(s) if isinstance(s, int | np.integer) and s > 0 else default
                 for s in shape)


def load(path: str | Path) -> list[np.ndarray]:
    """The arrays of a ``.npy`` (one input) or ``.npz`` file (one array per input, in order).

    Raises:
        UsageError: the file is missing or not a NumPy array file.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return [archive[name] for name in archive.files]
        return [np.load(path, allow_pickle=False)]
    except (OSError, ValueError) as exc:
        raise UsageError(f"--calibration: {path} is not a readable .npy or .npz file of "
                         f"samples ({exc})") from None


def _split(array: np.ndarray, spec: InputSpec) -> list[np.ndarray]:
    """One input's samples: the array is one sample, or samples stacked on a leading axis."""
    shape = spec.shape
    if array.shape == shape:
        return [array]
    if array.shape[1:] == shape:
        return list(array)
    if shape and shape[0] == 1 and array.ndim == len(shape) and array.shape[1:] == shape[1:]:
        return [array[i:i + 1] for i in range(array.shape[0])]
    raise UsageError(f"--calibration: samples of shape {array.shape} do not fit input "
                     f"{spec.name!r} of shape {shape}; give N samples as an array of shape "
                     f"(N, {', '.join(map(str, shape[1:] if shape and shape[0] == 1 else shape))})")


def samples(specs: list[InputSpec], given: list[np.ndarray] | None = None, *,
            count: int = RANDOM_SAMPLES, seed: int = 0) -> list[list[np.ndarray]]:
    """Calibration samples, each a list with one array per input.

    Args:
        specs: the model's inputs.
        given: the user's arrays (from :func:`load`), one per input; None for random ones.
        count: how many random samples to draw.
        seed: seed of the random samples.

    Raises:
        UsageError: the user's arrays do not match the inputs in number or shape.
    """
    if given is None:
        rng = np.random.default_rng(seed)
        return [[_random(rng, spec) for spec in specs] for _ in range(count)]
    if len(given) != len(specs):
        raise UsageError(f"--calibration: {len(given)} array(s) for a model with "
                         f"{len(specs)} input(s) ({', '.join(s.name for s in specs)}); give "
                         "one array per input (.npz for several)")
    per_input = [_split(np.asarray(a), s) for a, s in zip(given, specs, strict=True)]
    if len({len(p) for p in per_input}) != 1:
        raise UsageError("--calibration: the inputs have different numbers of samples")
    return [[p[i].astype(s.dtype, copy=False) for p, s in zip(per_input, specs, strict=True)]
            for i in range(len(per_input[0]))]


def _random(rng: np.random.Generator, spec: InputSpec) -> np.ndarray:
    """A standard-normal float sample (inputs are usually normalised), or small integers."""
    if np.issubdtype(np.dtype(spec.dtype), np.integer):
        return rng.integers(0, 2, spec.shape).astype(spec.dtype)
    return rng.standard_normal(spec.shape).astype(spec.dtype)


def digest_bytes(given: list[np.ndarray] | None) -> bytes | None:
    """The bytes that identify the user's samples in the cache key (None for random)."""
    if given is None:
        return None
    return b"".join(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()
                    for a in given)
