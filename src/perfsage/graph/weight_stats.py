"""What a model's own int8 weights look like, per operator: sparsity, distinct values, entropy.

A network's cost on an NPU that decompresses weights in hardware (Ethos-U) depends on the
weight values, not only on their shapes: zeros and few distinct values take far fewer bytes
once encoded. These statistics say, per operator and from the model's own buffers, how
compressible its weights are, and :func:`is_compressed` whether they are compressed beyond
what dense weights (random, or trained and left dense) ever are.

Cheap by design: one histogram per weight tensor over a strided sample of at most
:data:`SAMPLE` values, and the distinct values of at most :data:`CHANNEL_SAMPLE` output
channels. About 2 ms for a MobileNetV2's 3.5 million weights (``benchmarks/compressed_real.py``
times it). Prediction, which asks on every Ethos-U model whether its weights are compressed,
calls :func:`is_compressed`: the same decision from only the statistics it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfsage.graph.ir import Model, Tensor

#: Operators whose int8 weights an NPU encodes: builtin name -> (input index of the
#: weights, output-channel axis of the TFLite layout when the quantisation names none).
WEIGHTED_OPERATORS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 0),  # OHWI
    "DEPTHWISE_CONV_2D": (1, 3),  # 1HWC
    "FULLY_CONNECTED": (1, 0),  # OI
    "TRANSPOSE_CONV": (1, 0),  # OHWI (input 0 is the output shape)
    "CONV_3D": (1, 4),  # DHWIO
}

#: Values per tensor read for its histogram (a strided sample beyond this).
SAMPLE = 1 << 16
#: Output channels per tensor whose distinct values are counted.
CHANNEL_SAMPLE = 16
#: Where each sampled channel's 256 bins start in one shared histogram.
_CHANNEL_OFFSETS = np.arange(0, 256 * CHANNEL_SAMPLE, 256)[:, None]
#: A layer counts as pruned from this share of zero weights: dense int8 weights, random or
#: trained, hold a few per cent (1/128 for the builder's triangular ones).
SPARSE_FROM = 0.1
#: A layer counts as clustered when its output channels hold at most this many distinct
#: values while holding at least :data:`CLUSTER_MIN_CHANNEL` weights each.
CLUSTERED_UP_TO = 32
CLUSTER_MIN_CHANNEL = 128
#: A model counts as compressed when its pruned or clustered layers hold this share of its
#: weights: below it, what compression changes is within the prediction's own error.
COMPRESSED_SHARE = 0.01


@dataclass(frozen=True, slots=True)
class WeightTensor:
    """The int8 weights of one operator of the main graph.

    ``axis`` is the output-channel axis. A tensor read by several operators is listed once,
    under the first.
    """

    op_index: int
    opcode: str
    tensor: Tensor
    axis: int

    @property
    def values(self) -> np.ndarray:
        """The int8 values in their TFLite layout (a view of the model's buffer)."""
        return self.tensor.data.view(np.int8).reshape(self.tensor.shape)

    @property
    def zero_points(self) -> np.ndarray:
        """Zero point per output channel (one value when per tensor), int64."""
        q = self.tensor.quantization
        return np.asarray(q.zero_point if q is not None and q.zero_point else (0,), np.int64)

    @property
    def scales(self) -> np.ndarray:
        """Scale per output channel (one value when per tensor), float64."""
        q = self.tensor.quantization
        return np.asarray(q.scale if q is not None and q.scale else (1.0,), np.float64)


def weight_tensors(model: Model) -> list[WeightTensor]:
    """The int8 weight tensors of the main graph's convolutions and dense layers, in order.

    Float or int16 weights, weights computed at run time and sparse (TFLite-compressed)
    tensors are left out.
    """
    sub = model.main
    seen: set[int] = set()
    out = []
    for op in sub.operators:
        slot = WEIGHTED_OPERATORS.get(op.opcode)
        if slot is None or len(op.inputs) <= slot[0] or op.inputs[slot[0]] < 0:
            continue
        t = sub.tensors[op.inputs[slot[0]]]
        if (t.dtype != "int8" or t.data is None or t.is_sparse or t.buffer in seen
                or not t.shape or min(t.shape) <= 0 or t.data.size != t.num_elements):
            continue
        seen.add(t.buffer)
        q = t.quantization
        axis = q.axis if q is not None and q.per_channel and q.axis is not None else slot[1]
        out.append(WeightTensor(op.index, op.opcode, t, min(axis % len(t.shape),
                                                            len(t.shape) - 1)))
    return out


@dataclass(frozen=True, slots=True)
class WeightStats:
    """Per operator of the main graph, its int8 weights' statistics (0 where it has none).

    ``zero_fraction``: share of weights at the zero point; ``distinct``: distinct values
    in the tensor (in its sample); ``channel_distinct``: the median over sampled output
    channels of their distinct values; ``channel_size``: weights per output channel;
    ``entropy_bits``: zeroth-order entropy of the values, bits per weight.
    """

    elements: np.ndarray  # int64
    zero_fraction: np.ndarray  # float64
    distinct: np.ndarray  # int64
    channel_distinct: np.ndarray  # float64
    channel_size: np.ndarray  # int64
    entropy_bits: np.ndarray  # float64

    @property
    def pruned(self) -> np.ndarray:
        """Per operator: holds weights, a share :data:`SPARSE_FROM` or more of them zero."""
        return _pruned(self.elements, self.zero_fraction)

    @property
    def clustered(self) -> np.ndarray:
        """Per operator: output channels of many weights, each of few distinct values."""
        return _clustered(self.elements, self.channel_size, self.channel_distinct)

    def compressed_share(self) -> float:
        """Share of the model's weights in pruned or clustered layers."""
        return _share(self.elements, self.pruned | self.clustered)

    def is_compressed(self) -> bool:
        """True when pruned or clustered layers hold :data:`COMPRESSED_SHARE` of the weights."""
        return self.compressed_share() >= COMPRESSED_SHARE


def _pruned(elements: np.ndarray, zero_fraction: np.ndarray) -> np.ndarray:
    """:attr:`WeightStats.pruned` from its columns (one rule for it and :func:`is_compressed`)."""
    return (elements > 0) & (zero_fraction >= SPARSE_FROM)


def _clustered(elements: np.ndarray, channel_size: np.ndarray,
               channel_distinct: np.ndarray) -> np.ndarray:
    """:attr:`WeightStats.clustered` from its columns (one rule for both deciders)."""
    return ((channel_size >= CLUSTER_MIN_CHANNEL) & (channel_distinct <= CLUSTERED_UP_TO)
            & (elements > 0))


def _share(elements: np.ndarray, compressed: np.ndarray) -> float:
    """Share of ``elements`` (weights per row) in the rows ``compressed`` marks."""
    total = int(elements.sum())
    return float(elements[compressed].sum()) / total if total else 0.0


def weight_stats(model: Model, tensors: list[WeightTensor] | None = None) -> WeightStats:
    """The weight statistics of every operator of ``model``'s main graph.

    One histogram per tensor (its strided sample), then every statistic for all tensors
    at once from the stacked histograms.
    """
    n = len(model.main.operators)
    found = weight_tensors(model) if tensors is None else tensors
    out = WeightStats(np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64), np.zeros(n),
                      np.zeros(n, np.int64), np.zeros(n))
    if not found:
        return out
    at = np.array([w.op_index for w in found])
    sizes = np.array([w.tensor.data.size for w in found])
    hists = np.stack([np.bincount(_sample(w), minlength=256)
                      for w in found]).astype(np.float64)
    totals = hists.sum(axis=1)
    zero_bins = np.array([_zero_bin(w) for w in found])
    p = hists / totals[:, None]
    logs = np.log2(np.where(p > 0, p, 1.0))
    channels = [_channel_distinct(w) for w in found]
    out.elements[at] = sizes
    out.zero_fraction[at] = hists[np.arange(len(found)), zero_bins] / totals
    out.distinct[at] = np.count_nonzero(hists, axis=1)
    out.entropy_bits[at] = -(p * logs).sum(axis=1)
    out.channel_distinct[at] = [c for c, _ in channels]
    out.channel_size[at] = [k for _, k in channels]
    return out


def is_compressed(model: Model, tensors: list[WeightTensor] | None = None) -> bool:
    """``weight_stats(model, tensors).is_compressed()``, computing only what decides it.

    Prediction asks this of every model on an Ethos-U target, and nearly all are dense: the
    full statistics' 256-bin histograms and entropies took a fifth of a MobileNetV2's
    prediction time, where the decision needs each sample's zeros and, for layers not
    already pruned, their channels' distinct values. Same samples, same rules
    (:func:`_pruned`, :func:`_clustered`, :func:`_share`), so the same answer.
    """
    found = weight_tensors(model) if tensors is None else tensors
    if not found:
        return False
    elements = np.array([w.tensor.data.size for w in found], np.int64)
    pruned = _pruned(elements, np.array([_zero_fraction(w) for w in found]))
    channel_size, channel_distinct = np.zeros(len(found), np.int64), np.zeros(len(found))
    for i in np.flatnonzero(~pruned).tolist():  # a pruned layer counts whatever its channels
        channel_distinct[i], channel_size[i] = _channel_distinct(found[i])
    compressed = pruned | _clustered(elements, channel_size, channel_distinct)
    return _share(elements, compressed) >= COMPRESSED_SHARE


def _sample(w: WeightTensor) -> np.ndarray:
    """A tensor's values (uint8 bit patterns) its statistics read: at most about :data:`SAMPLE`."""
    return w.tensor.data[::max(1, w.tensor.data.size // SAMPLE)]


def _zero_fraction(w: WeightTensor) -> float:
    """Share of a tensor's sample at its zero point, as :func:`weight_stats` computes it.

    Both divide two whole numbers held exactly in float64, so the quotients are the same.
    """
    sample, zero = _sample(w), _zero_bin(w)
    # A zero point of 0 (int8 weights' own) counts without a comparison array: 40 % faster.
    found = sample.size - np.count_nonzero(sample) if zero == 0 else np.count_nonzero(
        sample == zero)
    return found / sample.size


def _zero_bin(w: WeightTensor) -> int:
    """The histogram bin (uint8 bit pattern) of a tensor's zero point.

    Its first, when they differ per channel: int8 weights have one, 0, in practice.
    """
    q = w.tensor.quantization
    return int(q.zero_point[0]) & 0xFF if q is not None and q.zero_point else 0


def _channel_distinct(w: WeightTensor) -> tuple[float, int]:
    """(median distinct values over sampled output channels, weights per channel).

    Only channels of :data:`CLUSTER_MIN_CHANNEL` weights or more are counted (0 else):
    fewer cannot tell clustering from chance.
    """
    shape = w.tensor.shape
    channels = shape[w.axis]
    size = w.tensor.data.size // max(channels, 1)
    if size < CLUSTER_MIN_CHANNEL:
        return 0.0, size
    step = max(1, channels // CHANNEL_SAMPLE)
    # swapaxes, not moveaxis: a channel's distinct values do not depend on the order of
    # its weights, and swapaxes costs a fifth of this function less.
    rows = w.tensor.data.reshape(shape).swapaxes(0, w.axis)[::step][:CHANNEL_SAMPLE]
    k = len(rows)
    seen = np.bincount((rows.reshape(k, -1) + _CHANNEL_OFFSETS[:k]).reshape(-1),
                       minlength=256 * k)
    counts = np.sort(np.count_nonzero(seen.reshape(k, 256), axis=1))
    return float(counts[k // 2]), size
