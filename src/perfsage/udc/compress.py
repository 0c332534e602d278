"""Compress a TFLite model's int8 weights in place: pruning and per-channel clustering.

NPUs such as Ethos-U decompress weights in hardware, so how compressible the int8 values
are decides a model's flash size and weight traffic (Vela's encoder turns zeros into zero
runs and few distinct values into a small palette). These transforms change only the
values of the weight tensors of convolutions and fully connected layers: the graph, the
tensor shapes, the scales and zero points and every other byte of the file stay as they
were, so a compressed model runs wherever the original did (LiteRT, TFLite Micro, Vela).

* **Magnitude pruning** (``sparsity``): the given share of a layer's weights with the
  smallest real magnitude (``scale * |q - zero_point|``, so per-channel scales count) are
  set to the zero point. ``structured`` zeroes whole output channels instead, those of
  smallest L2 norm, the given share of them.
* **Clustering** (``bits``): each output channel keeps at most ``2**bits`` distinct int8
  values, the centroids of a one-dimensional k-means over its values (Lloyd's algorithm
  on the channel's 256-bin histogram, started at its quantiles), rounded to int8. A
  channel that holds the zero point keeps it exactly as one of its values, so pruning
  survives clustering. ``bits=8`` leaves the values as they are.

The accuracy a compressed model loses is not estimated here: that is the user's to judge.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from perfsage.errors import UsageError
from perfsage.graph import Model, read_model
from perfsage.graph.flatbuf import SLOTS, Table
from perfsage.graph.weight_stats import weight_tensors

#: The most of a layer's weights (or channels) pruning may remove.
MAX_SPARSITY = 0.95
#: Cluster counts are 2**bits for bits in this range; 8 leaves int8 values as they are.
MIN_BITS, MAX_BITS = 1, 8

#: Lloyd iterations of the clustering; it converges well before on 256-bin histograms.
_LLOYD_ITERATIONS = 30
#: Centroid moves below this (in int8 steps) end the iterations: the rounding hides them.
_CONVERGED = 1e-3


@dataclass(frozen=True, slots=True)
class LayerCompression:
    """How to compress one layer's weights.

    Attributes:
        sparsity: share of the weights (or, when ``structured``, of the output channels)
            set to zero, from 0 to :data:`MAX_SPARSITY`.
        bits: at most ``2**bits`` distinct values per output channel, 1 to 8 (8: as is).
        structured: prune whole output channels instead of single weights.
    """

    sparsity: float = 0.0
    bits: int = MAX_BITS
    structured: bool = False

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity)
        check_bits(self.bits)
        if not isinstance(self.structured, bool):
            raise UsageError(f"structured must be true or false, not {self.structured!r}")

    @property
    def is_identity(self) -> bool:
        """True when this leaves weights as they are."""
        return self.sparsity == 0 and self.bits == MAX_BITS

    @classmethod
    def parse(cls, value: Any, where: str = "a layer") -> LayerCompression:
        """From ``[sparsity, bits]``, ``{"sparsity": ..., "bits": ..., "structured": ...}``."""
        if isinstance(value, LayerCompression):
            return value
        if isinstance(value, list | tuple) and len(value) in (2, 3):
            return cls(*value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"sparsity", "bits", "structured"}
            if unknown:
                raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))};"
                                 " use sparsity, bits and structured")
            return cls(**value)
        raise UsageError(f"{where}: expected [sparsity, bits] or {{\"sparsity\": S, \"bits\": "
                         f"B}}, not {value!r}")


def check_sparsity(sparsity: Any) -> float:
    """``sparsity`` as a float in [0, MAX_SPARSITY], else a UsageError saying so."""
    if (isinstance(sparsity, bool) or not isinstance(sparsity, int | float)
            or not math.isfinite(sparsity) or not 0 <= sparsity <= MAX_SPARSITY):
        raise UsageError(f"sparsity must be a number from 0 to {MAX_SPARSITY} (the share of "
                         f"weights set to zero), not {sparsity!r}")
    return float(sparsity)


def check_bits(bits: Any) -> int:
    """``bits`` as an int in [MIN_BITS, MAX_BITS], else a UsageError saying so."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise UsageError(f"bits must be a whole number from {MIN_BITS} to {MAX_BITS} (at most "
                         f"2**bits distinct values per output channel), not {bits!r}")
    return bits


@dataclass(frozen=True, slots=True)
class CompressionPlan:
    """A compression for every weight layer: a default and per-layer exceptions.

    ``per_layer`` keys name a layer by its operator index (as ``perfsage inspect`` numbers
    them) or by its weight tensor's name. The JSON form (:meth:`as_json`) is what a search
    space's config records under ``"compression"``.
    """

    default: LayerCompression = field(default_factory=LayerCompression)
    per_layer: dict[str | int, LayerCompression] = field(default_factory=dict)

    @classmethod
    def of(cls, sparsity: float = 0.0, bits: int = MAX_BITS, per_layer: Mapping | None = None,
           structured: bool = False) -> CompressionPlan:
        """A plan from the arguments of :func:`compress`, checked."""
        layers = {_key(k): LayerCompression.parse(v, f"layer {k!r}")
                  for k, v in (per_layer or {}).items()}
        return cls(LayerCompression(sparsity, bits, structured), layers)

    @classmethod
    def from_json(cls, data: Any) -> CompressionPlan:
        """The plan a config recorded (see :meth:`as_json`), checked."""
        if not isinstance(data, Mapping):
            raise UsageError(f"a compression must be an object with sparsity, bits, structured "
                             f"and per_layer, not {data!r}")
        unknown = set(data) - {"sparsity", "bits", "structured", "per_layer"}
        if unknown:
            raise UsageError(f"compression: unknown key(s) {', '.join(sorted(unknown))}; use "
                             "sparsity, bits, structured and per_layer")
        per_layer = data.get("per_layer") or {}
        if not isinstance(per_layer, Mapping):
            raise UsageError(f"compression per_layer must map layers to [sparsity, bits], not "
                             f"{per_layer!r}")
        return cls.of(data.get("sparsity", 0.0), data.get("bits", MAX_BITS), per_layer,
                      data.get("structured", False))

    def as_json(self) -> dict[str, Any]:
        """Plain JSON: ``{"sparsity", "bits", "structured", "per_layer": {key: {...}}}``."""
        return {**asdict(self.default),
                "per_layer": {str(k): asdict(v) for k, v in self.per_layer.items()}}

    def for_layer(self, layer: WeightLayer) -> LayerCompression:
        """The compression of one layer: its own entry, else the default."""
        for key in (layer.op_index, layer.name):
            if key in self.per_layer:
                return self.per_layer[key]
        return self.default

    def check_layers(self, layers: list[WeightLayer], source: str) -> None:
        """Fail on a per-layer key that names none of ``layers``, listing what they are."""
        known = {k for layer in layers for k in (layer.op_index, layer.name)}
        missing = [k for k in self.per_layer if k not in known]
        if missing:
            names = ", ".join(f"{layer.op_index} ({layer.name})" for layer in layers[:12])
            more = f" and {len(layers) - 12} more" if len(layers) > 12 else ""
            raise UsageError(f"{source}: no weight layer {missing[0]!r} to compress; layers are "
                             f"named by operator index or weight tensor name: {names}{more}"
                             if layers else f"{source}: the model has no int8 weight layers "
                                            f"to compress (asked for {missing[0]!r})")


def _key(key: Any) -> str | int:
    """A per-layer key: an int stays one, a string of digits becomes an operator index."""
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise UsageError(f"a per-layer key must be an operator index or a tensor name, not "
                         f"{key!r}")
    return int(key) if isinstance(key, str) and key.isdigit() else key


@dataclass(frozen=True, slots=True)
class WeightLayer:
    """One weight tensor of the main graph that compression can change.

    ``start`` is where its int8 values begin in the file; ``axis`` is its output-channel
    axis. A tensor read by several operators is listed once, under the first.
    """

    op_index: int
    opcode: str
    tensor: int
    name: str
    shape: tuple[int, ...]
    axis: int
    start: int
    scales: np.ndarray  # float64 per output channel (one value when per tensor)
    zero_points: np.ndarray  # int64 per output channel (one value when per tensor)

    @property
    def size(self) -> int:
        """Number of int8 values."""
        return math.prod(self.shape)


def weight_layers(data: bytes, model: Model | None = None) -> list[WeightLayer]:
    """The compressible weight tensors of a model's main graph, in operator order.

    The int8 weights of convolutions and dense layers (:func:`weight_tensors`); anything
    else (float or int16 weights, a weight computed at run time) is left alone.
    """
    model = model or read_model(data)
    starts = _buffer_starts(data)
    return [WeightLayer(w.op_index, w.opcode, w.tensor.index, w.tensor.name,
                        tuple(w.tensor.shape), w.axis, starts[w.tensor.buffer], w.scales,
                        w.zero_points)
            for w in weight_tensors(model)]


def _buffer_starts(data: bytes) -> list[int]:
    """Where each buffer's bytes start in the file (its data vector, or its offset)."""
    root = Table.root(data)
    slot = SLOTS["Buffer"]
    starts = []
    for b in root.tables(SLOTS["Model"]["Buffers"]):
        offset = b.scalar(slot["Offset"], "uint64")
        starts.append(offset if offset > 1 else b.vector(slot["Data"])[0])
    return starts


def compress(model_bytes: bytes, sparsity: float = 0.0, bits: int = MAX_BITS,
             per_layer: Mapping[str | int, Any] | None = None, *,
             structured: bool = False) -> bytes:
    """A copy of a TFLite model with its int8 weights pruned and clustered.

    Args:
        model_bytes: the model's file contents.
        sparsity: share of each layer's weights set to zero (0 to 0.95).
        bits: at most ``2**bits`` distinct values per output channel (1 to 8; 8: as is).
        per_layer: exceptions by operator index or weight tensor name, each
            ``(sparsity, bits)``, ``(sparsity, bits, structured)`` or a
            :class:`LayerCompression`.
        structured: prune whole output channels instead of single weights.

    Returns:
        The compressed model's bytes: the same graph and quantisation, other values.

    Raises:
        UsageError: a value out of range, or a per-layer key naming no weight layer.
        ModelFileError: the bytes are not a valid TFLite model.
    """
    return apply_plan(model_bytes, CompressionPlan.of(sparsity, bits, per_layer, structured))


def apply_plan(model_bytes: bytes, plan: CompressionPlan, source: str = "<bytes>") -> bytes:
    """The model with ``plan`` applied to every weight layer (see :func:`compress`)."""
    data = bytes(model_bytes)
    layers = weight_layers(data, read_model(data, name=source))
    plan.check_layers(layers, source)
    out = bytearray(data)
    for layer in layers:
        how = plan.for_layer(layer)
        if how.is_identity:
            continue
        view = np.frombuffer(out, np.int8, layer.size, layer.start)
        values = compress_values(view.reshape(layer.shape), layer, how)
        out[layer.start:layer.start + layer.size] = values.tobytes()
    return bytes(out)


def compress_values(q: np.ndarray, layer: WeightLayer, how: LayerCompression) -> np.ndarray:
    """One layer's int8 weights (its TFLite layout) pruned and clustered per ``how``."""
    rows = np.moveaxis(q, layer.axis, 0)
    channels = rows.shape[0]
    flat = rows.reshape(channels, -1).astype(np.int16)
    scales = np.broadcast_to(layer.scales, (channels,)) if layer.scales.size in (1, channels) \
        else np.full(channels, float(layer.scales[0]))
    zero = (np.broadcast_to(layer.zero_points, (channels,))
            if layer.zero_points.size in (1, channels)
            else np.full(channels, int(layer.zero_points[0]))).astype(np.int16)
    if how.sparsity > 0:
        flat = _prune(flat, zero, scales, how.sparsity, how.structured)
    if how.bits < MAX_BITS:
        flat = _cluster(flat, zero, 1 << how.bits)
    out = flat.astype(np.int8).reshape(rows.shape)
    return np.ascontiguousarray(np.moveaxis(out, 0, layer.axis))


def _prune(flat: np.ndarray, zero: np.ndarray, scales: np.ndarray, sparsity: float,
           structured: bool) -> np.ndarray:
    """Set the smallest-magnitude weights (or channels) to each channel's zero point."""
    magnitude = np.abs(flat - zero[:, None]) * np.abs(scales)[:, None]
    out = flat.copy()
    if structured:
        k = round(sparsity * flat.shape[0])
        if k:
            weakest = np.argsort((magnitude ** 2).sum(axis=1), kind="stable")[:k]
            out[weakest] = zero[weakest, None]
        return out
    k = round(sparsity * flat.size)
    if k:
        smallest = np.argpartition(magnitude.ravel(), k - 1)[:k]
        rows = smallest // flat.shape[1]
        out.reshape(-1)[smallest] = zero[rows]
    return out


def _cluster(flat: np.ndarray, zero: np.ndarray, k: int) -> np.ndarray:
    """Each row's values replaced by the nearest of at most ``k`` int8 centroids.

    A one-dimensional k-means per row, all rows at once over the distinct values each row
    holds (weighted by their counts). Rows that hold their zero point keep it as a
    centroid that never moves.
    """
    channels = flat.shape[0]
    hist = np.bincount((flat + 128 + 256 * np.arange(channels)[:, None]).ravel(),
                       minlength=256 * channels)
    present = np.flatnonzero(hist)  # (row, bin) of every distinct value, row-major
    rows, value = np.divmod(present, 256)
    count = hist[present].astype(np.float64)
    zero_bin = zero.astype(np.int64) + 128
    pinned = np.zeros(channels, dtype=bool)
    pinned[rows[value == zero_bin[rows]]] = True
    cent = _quantile_start(rows, value, count, channels, k)
    for _ in range(_LLOYD_ITERATIONS):
        cent = np.sort(_pin(cent, pinned, zero_bin), axis=1)
        slots = _nearest(cent, rows, value) + k * rows
        total = np.bincount(slots, count * value, k * channels).reshape(channels, k)
        weight = np.bincount(slots, count, k * channels).reshape(channels, k)
        moved = np.where(weight > 0, total / np.maximum(weight, 1e-300), cent)
        if np.abs(moved - cent).max() < _CONVERGED:
            break
        cent = moved
    cent = np.sort(_pin(np.rint(cent), pinned, zero_bin), axis=1)
    lookup = np.zeros(256 * channels, np.int16)
    lookup[present] = cent[rows, _nearest(cent, rows, value)] - 128
    return lookup.reshape(channels, 256)[np.arange(channels)[:, None], flat + 128]


def _pin(cent: np.ndarray, pinned: np.ndarray, zero_bin: np.ndarray) -> np.ndarray:
    """Centroids with, in each pinned row, the one nearest the zero point set to it."""
    if not pinned.any():
        return cent
    out = cent.copy()
    rows = np.flatnonzero(pinned)
    nearest = np.abs(out[rows] - zero_bin[rows, None]).argmin(axis=1)
    out[rows, nearest] = zero_bin[rows]
    return out


def _quantile_start(rows: np.ndarray, value: np.ndarray, count: np.ndarray, channels: int,
                    k: int) -> np.ndarray:
    """``k`` starting centroids per row at the quantiles of its values."""
    totals = np.bincount(rows, count, channels)
    ends = np.cumsum(np.bincount(rows, minlength=channels))
    starts = ends - np.bincount(rows, minlength=channels)
    cdf = np.cumsum(count)
    before = np.concatenate([[0.0], cdf])[starts]  # the counts of earlier rows
    share = (cdf - before[rows]) / totals[rows] + 2.0 * rows  # rows apart in one array
    targets = (np.arange(k) + 0.5) / k + 2.0 * np.arange(channels)[:, None]
    found = np.minimum(np.searchsorted(share, targets.ravel()).reshape(channels, k),
                       ends[:, None] - 1)
    return value[found].astype(np.float64)


def _nearest(cent: np.ndarray, rows: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Index of each (row, value)'s nearest centroid in its row (centroids sorted)."""
    k = cent.shape[1]
    if k == 1:
        return np.zeros(len(rows), np.int64)
    mids = (cent[:, 1:] + cent[:, :-1]) / 2 + 512.0 * np.arange(len(cent))[:, None]
    found = np.searchsorted(mids.ravel(), value + 512.0 * rows, side="right")
    return found - (k - 1) * rows


def plan_from_file(path: str, text: str) -> dict[str | int, LayerCompression]:
    """Per-layer exceptions from a JSON file's text: ``{layer: [sparsity, bits], ...}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected an object mapping layers to [sparsity, bits], "
                         f"not {type(data).__name__}")
    return {_key(k): LayerCompression.parse(v, f"{path}: layer {k!r}") for k, v in data.items()}
