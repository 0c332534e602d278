"""Costs that follow from a model's own weight values: what the network cannot see, computed.

The network learned flash size, weight traffic and latency on models with the builder's
dense random weights; it reads shapes, not weight values, so any model gets the figures of
a twin with those weights. On Ethos-U the difference can be large: Vela's weight encoder
compresses, and pruned or clustered weights encode to a fraction (MobileNetV2 at 90 %
sparsity and 4 values per channel: 3.4 times less flash and 2.9 times less time on
Ethos-U55), trained or He-initialised ones peaked at zero to a few percent less (Keras'
ResNets and ShuffleNets: 4-7 %). It follows from the bytes the encoder makes of each
layer, which :mod:`perfsage.targets.weight_encoding` counts from the weights themselves.

So for every model on Ethos-U each layer's encoded size is counted twice: for its own
weights and for dense random weights of the same shape (the builder's triangular int8
values, what the network was trained on), and the difference corrects the network's figures:

* ``flash_kib`` (weights in flash): computed, the layers' encoded bytes plus what Vela
  adds (command stream, its own constants), instead of the network's figure;
* ``latency_ms``: less by what the per-operator roofline (:mod:`perfsage.predictors.
  roofline`) saves when the weights' memory moves fewer bytes, each operator still
  costing the larger of its compute and its traffic (``npu_cycles``, Vela's compute
  cycles, stay: decoding compressed weights costs the NPU no more cycles in its model);
* ``energy_mj``: less by the bytes saved in the weights' memory (and, where SRAM caches
  the weights, their copy there) at the energy model's cost per byte.

Each is per operator (:class:`Correction`), so ``--per-layer`` rows add up to the totals.
A model with weights like the builder's is left almost as it is (MobileNetV2's example:
0.3 % more bytes); one whose pruned or clustered layers hold a share of its weights
(:func:`perfsage.graph.weight_stats.is_compressed`) also gets a note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfsage.graph import Model
from perfsage.graph.weight_stats import WEIGHTED_OPERATORS, WeightTensor
from perfsage.predictors.features import NODE_FEATURES, GraphFeatures
from perfsage.predictors.roofline import estimate_features
from perfsage.targets.energy import BYTE_PJ
from perfsage.targets.hardware import Hardware
from perfsage.targets.weight_encoding import (
    ENCODED_OPERATORS,
    HARDWARE_DILATION,
    StreamStats,
    dilated_kernel,
    layers_stats,
    ohwi,
    scale_stream_bytes,
    stats_bytes,
    triangular_stats,
)

#: The energy model's names of the memories weights live in, by Vela's ini name.
_ENERGY_AREA = {"OffChipFlash": "off_chip_flash", "Dram": "dram", "Sram": "sram"}
#: Seed of the dense random weights the reference sizes are counted on.
_REFERENCE_SEED = 0x5EED
#: Reference sizes already counted, by (opcode, shape, dilation); emptied beyond this many.
_REFERENCE_KEPT = 4096
_reference_sizes: dict[tuple[str, tuple[int, ...], tuple[int, int]], int] = {}


@dataclass(frozen=True, slots=True)
class WeightBytes:
    """Per operator, the bytes Vela stores of its weights, biases and scales (0: none).

    ``actual`` for the model's own weights, ``reference`` for dense random ones of the
    same shapes.
    """

    actual: np.ndarray
    reference: np.ndarray

    @property
    def saved(self) -> float:
        """Bytes the model's weights save against dense ones (negative: they cost more)."""
        return float(self.reference.sum() - self.actual.sum())


def weight_bytes(model: Model, tensors: list[WeightTensor]) -> WeightBytes:
    """The encoded bytes of every weight layer, for its own weights and for dense ones.

    An operator that reads weights an earlier one already has (``tensors`` lists them
    under the first) stores only its own biases and scales, the same for both.
    """
    n = len(model.main.operators)
    actual, reference = np.zeros(n), np.zeros(n)
    # Not encoded by Vela (CONV_3D runs on the CPU): their raw bytes stay.
    encoded = [w for w in tensors if w.opcode in ENCODED_OPERATORS and w.values.ndim in (2, 4)]
    if encoded:
        at = [w.op_index for w in encoded]
        spread = [_dilation(model.main.operators[w.op_index]) for w in encoded]
        keys = [(w.opcode, tuple(w.tensor.shape), d) for w, d in zip(encoded, spread,
                                                                      strict=True)]
        missing = [k for k in dict.fromkeys(keys) if k not in _reference_sizes]
        own = [(w.opcode, dilated_kernel(w.values, w.zero_points, w.axis, d), w.zero_points,
                w.axis) for w, d in zip(encoded, spread, strict=True)]
        # The model's layers and the dense ones not counted yet, encoded in one pass.
        own_stats, own_channels = layers_stats(own)
        dense_stats, dense_channels = _dense_stats(missing)
        coded = stats_bytes(own_stats + dense_stats, own_channels + dense_channels)
        actual[at] = coded[:len(encoded)]
        if len(_reference_sizes) + len(missing) > _REFERENCE_KEPT:
            _reference_sizes.clear()
        _reference_sizes.update(zip(missing, coded[len(encoded):].tolist(), strict=True))
        reference[at] = [_reference_sizes[k] for k in keys]
        for index, channels in _sharing(model, encoded):
            actual[index] = reference[index] = scale_stream_bytes(channels)
    return WeightBytes(actual, reference)


def _sharing(model: Model, encoded: list[WeightTensor]) -> list[tuple[int, int]]:
    """(operator, output channels) of each operator reading weights listed under another."""
    first = {w.tensor.buffer: w for w in encoded}
    out = []
    for op in model.main.operators:
        slot = WEIGHTED_OPERATORS.get(op.opcode)
        if slot is None or len(op.inputs) <= slot[0] or op.inputs[slot[0]] < 0:
            continue
        w = first.get(model.main.tensors[op.inputs[slot[0]]].buffer)
        if w is not None and w.op_index != op.index and op.opcode == w.opcode:
            out.append((op.index, ohwi(w.opcode, w.values).shape[0]))
    return out


def _dilation(op) -> tuple[int, int]:
    """A convolution's (height, width) dilation factors; (1, 1) for other operators."""
    return (int(op.options.get("dilation_h_factor", 1) or 1),
            int(op.options.get("dilation_w_factor", 1) or 1))


def _dense_stats(keys: list[tuple[str, tuple[int, ...], tuple[int, int]]],
                 ) -> tuple[list[StreamStats], list[int]]:
    """Stream statistics and output channels of dense random weights of each key.

    Keys are (opcode, shape, dilation). The builder's triangular int8 weights, by their
    expected statistics (:func:`triangular_stats`) where those decide the encoding, else
    drawn (:func:`_dense_layers`): where padding zeros could run, and where a dilation
    beyond the hardware's spreads zero points between the taps.
    """
    expected = [triangular_stats(opcode, shape) if max(dilation) <= HARDWARE_DILATION
                else None for opcode, shape, dilation in keys]
    drawn = [i for i, found in enumerate(expected) if found is None]
    stats, channels = layers_stats(_dense_layers([keys[i] for i in drawn]))
    for i, pair in zip(drawn, zip(stats, channels, strict=True), strict=True):
        expected[i] = pair
    return [pair[0] for pair in expected], [pair[1] for pair in expected]


def _dense_layers(keys: list[tuple[str, tuple[int, ...], tuple[int, int]]],
                 ) -> list[tuple[str, np.ndarray, int, int]]:
    """Dense random weights of each (opcode, shape, dilation): the builder's triangular int8.

    The difference of two uniform 7-bit values (``builder.quant.random_int8``), from a fixed
    stream (:func:`_random_bytes`) so the reference is the same on every call and machine;
    spread as Vela spreads a dilation beyond the hardware's (:func:`dilated_kernel`).
    """
    if not keys:
        return []
    sizes = [int(np.prod(shape)) for _, shape, _ in keys]
    stream = _random_bytes(2 * max(sizes)) & 0x7F
    out = []
    for (opcode, shape, dilation), n in zip(keys, sizes, strict=True):
        values = (stream[:n].astype(np.int16) - stream[n:2 * n]).astype(np.int8)
        axis = 3 if opcode == "DEPTHWISE_CONV_2D" else 0
        out.append((opcode, dilated_kernel(values.reshape(shape), 0, axis, dilation), 0, axis))
    return out


def _random_bytes(n: int) -> np.ndarray:
    """``n`` pseudo-random bytes, the same on every machine: SplitMix64 of a counter.

    Counter-based (Steele et al., OOPSLA 2014, the generator's output function), so a
    prefix of one stream serves every shape and it costs NumPy arithmetic alone: no
    ``numpy.random`` (whose import costs a start-up as much as predicting a small model)
    and no hash library (SHAKE-128 took 10 ms for MobileNetV2's largest layer).
    """
    z = np.arange((n + 7) // 8, dtype=np.uint64) + np.uint64(_REFERENCE_SEED)
    z *= np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z.astype("<u8", copy=False).view(np.uint8)[:n]  # little-endian bytes everywhere


@dataclass(frozen=True, slots=True)
class Correction:
    """What a model's own weights make of a network's figures, per operator.

    ``flash_kib`` replaces the network's (None where the target keeps weights elsewhere):
    per operator the encoded weights it stores (``flash_rows_kib``) plus what Vela adds
    (``flash_overhead_kib``). ``less[metric]`` (latency, energy) is taken off the
    network's cost of each operator.
    """

    flash_rows_kib: np.ndarray | None
    flash_overhead_kib: float
    less: dict[str, np.ndarray]

    @property
    def flash_kib(self) -> float | None:
        """The model's flash on the target, computed; None where weights are not in flash."""
        if self.flash_rows_kib is None:
            return None
        return float(self.flash_rows_kib.sum()) + self.flash_overhead_kib

    @property
    def latency_ms(self) -> float:
        """Time the model's weights save against dense random ones (negative: they cost)."""
        return float(self.less["latency_ms"].sum())

    @property
    def energy_mj(self) -> float:
        """Energy the model's weights save against dense random ones."""
        return float(self.less["energy_mj"].sum())

    def limited(self, latency_ms: float, npu_ms: float) -> Correction:
        """This correction, its time saved scaled down to keep the NPU cycles' ``npu_ms``.

        ``latency_ms``: the network's figure for the model.

        Vela's latency of a pass is never below its NPU cycles (none was, on the 51 real
        models x 3 targets), and decoding fewer weight bytes saves none of those: a batch-1
        FULLY_CONNECTED on Ethos-U65 takes one NPU cycle per 5.7 weights however few bytes
        they encode to, which the roofline's MAC-rate compute does not see. Without the
        limit the MLPerf Tiny autoencoder at 90 % sparsity and 4 values per channel was
        put 50 % below Vela on Ethos-U65. A network figure already below ``npu_ms`` is
        left to the correction as it is.
        """
        less = self.less.get("latency_ms")
        total = self.latency_ms
        room = max(latency_ms - max(npu_ms, 0.0), 0.0)
        if less is None or total <= room or latency_ms <= npu_ms:
            return self
        scaled = dict(self.less)
        scaled["latency_ms"] = less * (room / total)
        return Correction(self.flash_rows_kib, self.flash_overhead_kib, scaled)

    def apply(self, row: dict[str, float]) -> None:
        """Correct the figures of ``row`` in place; none falls below a small share of itself."""
        if self.flash_kib is not None and "flash_kib" in row:
            row["flash_kib"] = self.flash_kib
        for metric, less in (("latency_ms", self.latency_ms), ("energy_mj", self.energy_mj)):
            if metric in row and less:
                row[metric] = max(row[metric] - less, row[metric] * _FLOOR_SHARE)

    def apply_per_operator(self, rows: dict[str, np.ndarray], overhead: dict[str, float],
                           ) -> None:
        """Correct an additive readout's per-operator costs in place, as :meth:`apply` does.

        Flash rows become the encoded weights (the overhead Vela's additions); latency and
        energy rows lose what each operator's weights save.
        """
        if self.flash_rows_kib is not None and "flash_kib" in rows:
            rows["flash_kib"] = self.flash_rows_kib.copy()
            overhead["flash_kib"] = self.flash_overhead_kib
        for metric, less in self.less.items():
            if metric in rows:
                rows[metric] = rows[metric] - less


#: A corrected figure never falls below this share of the network's: the corrections are
#: differences of estimates, and a figure must stay positive.
_FLOOR_SHARE = 0.02

#: What Vela puts in flash besides the encoded weights, biases and scales of the model's
#: layers. Per NPU operator, what the rest leaves unexplained: the median over 419
#: Ethos-U55 labels of builder models of the task spaces and the zoo
#: (``benchmarks/compressed_real.py --fit-flash DATASET``; Vela's command stream is a
#: tensor of its own, outside the flash figure). Per output channel of a MEAN, which Vela
#: lowers to a depthwise convolution with weights of its own: their bias and scale (10
#: bytes) and weights that encode to almost nothing (14,736 bytes for the 1280 channels of
#: Keras' MobileNetV2 in Vela's schedule). Per distinct lookup table (function and
#: quantisations), its 256 entries. Per SOFTMAX, which Vela lowers to some 30 element-wise
#: operators and their tables: the median of what the rest left unexplained on the real
#: models with one (benchmarks/keras_zoo.py, examples/models: 1,472 to 3,568 bytes).
COMMAND_BYTES_PER_OPERATOR = 19
MEAN_BYTES_PER_CHANNEL = 11.5
LUT_BYTES = 256
SOFTMAX_BYTES = 1500
#: Activations Vela computes through a lookup table (``roofline``'s list).
LUT_OPERATORS = frozenset({"LOGISTIC", "TANH", "HARD_SWISH", "GELU", "ELU", "EXP", "RSQRT",
                           "SQRT", "LEAKY_RELU", "PRELU"})


def flash_overhead(model: Model, on_npu: np.ndarray) -> float:
    """Bytes Vela puts in flash besides the layers' encoded weights, biases and scales.

    The command stream and Vela's own constants (:data:`COMMAND_BYTES_PER_OPERATOR` and the
    rest); with the layers' bytes as the encoder makes them (exact to about 1 %), within a
    few KiB of Vela's flash on real models.
    """
    sub = model.main
    total = COMMAND_BYTES_PER_OPERATOR * float(on_npu.sum())
    tables = set()
    for op in sub.operators:
        if not on_npu[op.index]:
            continue
        if op.opcode == "MEAN" and op.outputs and sub.tensors[op.outputs[0]].shape:
            total += MEAN_BYTES_PER_CHANNEL * max(sub.tensors[op.outputs[0]].shape[-1], 1)
        elif op.opcode in LUT_OPERATORS:
            tables.add(_lut_key(sub, op))
        elif op.opcode == "SOFTMAX":
            total += SOFTMAX_BYTES
    return total + LUT_BYTES * len(tables)


def _lut_key(sub, op) -> tuple:
    """What a lookup table's contents follow from: the function and both quantisations.

    Vela stores each distinct table once (an unrolled LSTM's 146 LOGISTICs share a
    handful), so tables are counted by this key, not per operator.
    """
    def quant(index: int) -> tuple:
        q = sub.tensors[index].quantization if index >= 0 else None
        return (q.scale, q.zero_point) if q is not None else ()

    first_in = op.inputs[0] if op.inputs else -1
    first_out = op.outputs[0] if op.outputs else -1
    return op.opcode, quant(first_in), quant(first_out), sub.tensors[first_in].dtype \
        if first_in >= 0 else None


#: Bytes per NPU cycle at which Vela 5.2 streams encoded weights, where it is not the
#: weights' memory bandwidth the ini gives: on Ethos-U85 (``Ethos_U85_SYS_DRAM_Mid``,
#: 12 bytes per cycle) its per-layer DRAM access cycles are 23,305 for the 81,920 bytes of a
#: dense 640x128 layer (MLPerf Tiny's autoencoder), about 3.5 bytes per cycle. With the
#: ini's rate the latency saved on the 39 compressed real models is a third of Vela's
#: (latency MAPE 25 %); with this one, 9 % (``benchmarks/compressed_real.py``).
WEIGHT_STREAM_BYTES_PER_CYCLE = {"ethos-u85": 3.5}


def correction(model: Model, graph: GraphFeatures, hw: Hardware, on_npu: np.ndarray,
               found: WeightBytes, metrics: list[str]) -> Correction:
    """The flash, and how much less time and energy, a model's own weights take, per operator."""
    saved = found.reference - found.actual
    saved[~on_npu] = 0.0
    rate = WEIGHT_STREAM_BYTES_PER_CYCLE.get(hw.accelerator.family)
    slower = hw.bytes_per_cycle(hw.weights_memory) / rate if rate else 1.0
    dense = estimate_features(graph, hw, on_npu,
                              constant_bytes(graph, found.reference) * slower)
    own = estimate_features(graph, hw, on_npu, constant_bytes(graph, found.actual) * slower)
    flash_rows, overhead = None, 0.0
    if "flash_kib" in metrics and hw.weights_memory in ("OffChipFlash", "OnChipFlash"):
        flash_rows = np.where(on_npu, found.actual, 0.0) / 1024
        overhead = flash_overhead(model, on_npu) / 1024
    per_byte = BYTE_PJ.get(_ENERGY_AREA.get(hw.weights_memory, ""), 0.0)
    if hw.weights_memory != hw.cache_memory and hw.spilling:
        per_byte += 2 * BYTE_PJ["sram"]  # copied into the SRAM cache, then read from it
    cycles = dense.op_cycles - own.op_cycles
    return Correction(flash_rows, overhead,
                      {"latency_ms": hw.cycles_to_ms(cycles),
                       "energy_mj": saved * per_byte * 1e-9})


def constant_bytes(graph: GraphFeatures, stored: np.ndarray) -> np.ndarray:
    """Per operator, the bytes of weights the roofline charges.

    ``stored`` where set (the int8 weight layers), the operator's raw constant bytes
    elsewhere.
    """
    raw = np.rint(np.expm1(graph.nodes[:, _PARAM_BYTES].astype(np.float64)))
    return np.where(stored > 0, stored, raw)


_PARAM_BYTES = NODE_FEATURES.index("param_bytes")
