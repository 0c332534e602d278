"""Per-operator roofline estimates on an Ethos-U target: what physics says a layer costs.

Each operator of a graph gets three costs in NPU cycles, from the hardware Vela's ini
describes (:mod:`perfsage.targets.hardware`) and the operator's own MACs, shapes and
bytes (its node features, :mod:`perfsage.predictors.features`):

* **compute**: MACs over the accelerator's MACs per cycle, after padding to the blocks it
  computes in: output channels to its micro-block depth (8), input channels to the 8-wide
  dot product, output rows and columns to its micro-block (2x1 on Ethos-U55-128, 2x2 on
  Ethos-U65-256). So 17 channels cost as many cycles as 24 (the sawtooth). Depthwise
  convolutions, reductions and pools have no dot product over channels and run at an
  eighth of the rate, a depthwise window in steps of 4 elements with at least the
  accumulators' write-back per step, a pool window of at least 4 (Vela's
  ``_estimate_conv_cycles``). Element-wise operators cost cycles per output element from
  Vela's ``output_cycles_per_elem`` tables (``architecture_features.py``). Where Vela
  lowers or fuses operators the estimate follows: a transposed convolution runs over its
  upsampled output, BATCH_MATMUL is a MUL per MAC on Ethos-U55 and U65, an activation runs
  in its producer's output stage, Ethos-U85 chains a residual ADD into its producer.
* **weights**: bytes of the constant tensors an operator reads (weights, biases, per-channel
  constants) over the bandwidth of the memory the memory mode puts them in
  (``const_mem_area``: off-chip flash on Ethos-U55 ``Shared_Sram``, DRAM in the
  ``Dedicated_Sram`` modes). A constant operand broadcast over an element-wise operator
  (the per-channel MUL and ADD of a BatchNorm the converter could not fold) is read once
  per output element on Ethos-U55 and U65, in short transfers that each pay a whole burst,
  as Vela's performance model counts it: that is what makes a DenseNet with unfolded
  BatchNorms spend most of its time reading flash.
* **feature maps**: activation bytes read and written over the bandwidth of the memory
  they live in. With the arena in SRAM (``Shared_Sram``) that is SRAM. With SRAM as a
  cache in front of an arena in DRAM (``Dedicated_Sram``), the graph's inputs and outputs
  stay in DRAM and the other feature maps are in SRAM while the activations live at that
  operator fit the cache (``arena_cache_size``); beyond it the excess share spills to DRAM.

An operator's cycles are ``max(compute, cycles of each memory)``, memories working in
parallel (bytes in one memory add up), as Vela's per-layer ``Op Cycles`` are the largest of
its NPU and per-memory access cycles; the graph's are the sum over operators. On the
search spaces and real models of ``benchmarks/roofline_vs_vela.py`` the total stays below
Vela's estimate on almost every model (docs/perfsage.md has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfsage.graph import Model
from perfsage.graph.ir import Tensor
from perfsage.predictors.features import (
    _LOG_MASK,  # which node features are log1p-scaled
    GLOBAL_FEATURES,
    NODE_FEATURES,
    OP_TYPES,
    GraphFeatures,
    featurize,
    graph_live_bytes,
)
from perfsage.targets.hardware import Hardware

#: Columns :func:`node_columns` adds for a network: log1p of each cost in NPU cycles, the
#: last the operator's roofline (the anchor of an additive readout, ``Roofline.op_cycles``).
ROOFLINE_COLUMNS = ("log_compute_cycles", "log_weight_cycles", "log_feature_map_cycles",
                    "log_op_cycles")

_DOT_PRODUCT = 8  # int8 values one MAC lane sums per cycle (Vela: dpu_dot_product_width)
#: Families whose input channels are not assumed padded to the dot product: Vela's
#: Ethos-U85 model charges a 5x5 convolution over 3 channels 0.56x of the 8-padded figure.
_UNPADDED_INPUT = ("ethos-u85",)
_DEPTHWISE_KERNEL_STEP = 4  # kernel elements per depthwise step (Vela: num_kernel_steps)
#: Cycles to write back one micro-block of accumulators, per 8 output channels: a depthwise
#: step costs at least this (Vela: cycles_wb), which is what a global MEAN pays.
_WRITEBACK_CYCLES = 32
_POOL_MIN_WINDOW = 4  # Vela: max(4, kernel elements) cycles per pooling micro-block

#: Cycles per output element of element-wise work, (ADD/SUB, MUL, other, lookup table),
#: from Vela's ``output_cycles_per_elem`` (indices 5, 3, 7) and ``activation_cycles_per_elem``
#: (index 0) in ``architecture_features._generate_output_perf_tables``, but for Ethos-U65-256's
#: lookup table: Vela 5.2's C++ core charges it 0.5 cycles per element, not the Python
#: table's 1.0 (a LOGISTIC on 64x64x96: 197,248 cycles). Ethos-U85's tables live in the C++
#: core only: it is given Ethos-U65-256's, scaled by MACs per cycle.
_ELEMENTWISE_CYCLES = {
    "ethos-u55-32": (6.0, 3.0, 2.0, 1.0), "ethos-u55-64": (3.0, 1.5, 1.0, 1.0),
    "ethos-u55-128": (1.5, 0.75, 0.5, 1.0), "ethos-u55-256": (0.75, 0.375, 0.25, 1.0),
    "ethos-u65-256": (0.75, 0.375, 0.25, 0.5), "ethos-u65-512": (0.375, 0.1875, 0.125, 0.5),
}
#: Families without a matrix-product engine for two feature maps: Vela lowers BATCH_MATMUL
#: to element-wise MULs and a sum, one MUL per MAC (Ethos-U85 multiplies natively).
_ELEMENTWISE_MATMUL = ("ethos-u55", "ethos-u65")
#: Families whose performance model reads a broadcast constant once per output element,
#: with the bytes it moves per transfer. The channels are padded to 16 and each transfer
#: pays a whole burst of the memory: Vela 5.2 charges a per-channel MUL on a 32x32x56 map
#: 524,288 off-chip flash cycles on ``ethos-u55-128`` (32x32x64 elements x 128-byte burst /
#: 16 bytes). Ethos-U65 moves 16 bytes per transfer on 32x32 maps but 32 on 16x16 ones
#: (256,000 bytes of DRAM for 16x16x500): 32 is taken, to stay below Vela.
_BROADCAST_TRANSFER = {"ethos-u55": 16, "ethos-u65": 32}
_BROADCAST_BRICK = 16
#: Output planes up to this many positions, and constants of one brick (16 channels or
#: fewer), are read once instead: Vela 5.2 streams them on 16x16 maps and larger, not on
#: 8x8 ones, and on 12x12 ones (Keras' DenseNet121 at 96 px) a quarter as much.
_BROADCAST_ONCE_POSITIONS = 14 * 14


def _types(*names: str) -> np.ndarray:
    mask = np.zeros(len(OP_TYPES) + 1, dtype=bool)
    mask[[OP_TYPES.index(n) for n in names]] = True
    return mask


_MATMUL = _types("CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D")
_SPATIAL = _types("CONV_2D", "TRANSPOSE_CONV", "CONV_3D")  # pad rows/columns to micro-blocks
_TRANSPOSE_CONV = _types("TRANSPOSE_CONV")  # a convolution over the zero-upsampled input
_BATCH_MATMUL = _types("BATCH_MATMUL")
_CONV_2D = _types("CONV_2D")
_GROUPED = _CONV_2D  # may have filters over a part of the input's channels
_DEPTHWISE = _types("DEPTHWISE_CONV_2D")
_POOL = _types("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
_REDUCE = _types("MEAN", "SUM", "REDUCE_MAX", "ARG_MAX")  # a depthwise pass over the input
_ADD = _types("ADD", "SUB", "SQUARED_DIFFERENCE")
_MUL = _types("MUL", "DIV")
_LUT = _types("LOGISTIC", "TANH", "HARD_SWISH", "GELU", "ELU", "EXP", "RSQRT", "SQRT",
              "LEAKY_RELU", "PRELU")
_SIMPLE = _types("MAXIMUM", "MINIMUM", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "CAST",
                 "L2_NORMALIZATION", "RESIZE_BILINEAR")
_SOFTMAX = _types("SOFTMAX", "LOG_SOFTMAX")  # Vela lowers it to some 25 element-wise steps
#: Cycles of Vela's int8 SOFTMAX per element, per row (of the last axis) and per operator:
#: its ~25 element-wise steps run over the whole input or, a third of them (MAX_POOL,
#: REDUCE_SUM, a Newton-Raphson reciprocal), over one value per row, each such value a
#: 16-channel brick of its own. Fitted as lower bounds to what Vela 5.2 charged a SOFTMAX
#: between two element-wise operators (so that its input and output stay in SRAM, as in a
#: network) over 2 to 75,348 elements (rows x classes: 1x2, 1x10, 1x1000, 49x3, 16x16,
#: 256x64, 828x16, 828x91, 100x91, 64x256, 9216x2, 256x64 of attention heads, 510x21):
#: Ethos-U55-128 1.0-2.6x the bound, Ethos-U65-256 1.04-2.5x, Ethos-U85-256 1.02-4.5x
#: (erratic: 1x1000 costs it as much as Ethos-U65). A
#: standalone SOFTMAX keeps its input and output in DRAM on Ethos-U65 and U85, and costs
#: about 1.4x as much there: fitted on those, the bounds had put an SSD head's 828x91
#: SOFTMAX above Vela's own figure for it in the network. A fixed 3 passes over the
#: elements at the element-wise rate had charged it 1/12 of Vela's cycles.
_SOFTMAX_CYCLES = {"ethos-u55": (13.5, 30.0, 800.0), "ethos-u65": (8.5, 15.0, 1000.0),
                   "ethos-u85": (2.4, 20.0, 400.0)}
#: MACs per cycle of the configuration each family's figures were measured on: larger
#: configurations get proportionally fewer cycles (a bound stays a bound), smaller the same.
_SOFTMAX_MEASURED_ON = {"ethos-u55": 128, "ethos-u65": 256, "ethos-u85": 256}
#: NPU cycles each group of a grouped CONV_2D costs on top of its MACs. Vela runs one
#: convolution per group, each a command of its own with its own block set-up, so a
#: RegNetX stage of 46 groups of 8 channels on a 4x4 map cost Ethos-U65 4.5x the padded
#: MACs. The least gap per group between Vela's per-layer cycles and the MAC roofline, over
#: 18 grouped convolutions in a network (2-46 groups of 4-48 channels, 4x4 to 32x32 maps,
#: strides 1 and 2), rounded down so the roofline stays a bound: 468 / 565 / 713 cycles.
_GROUP_CYCLES = {"ethos-u55": 450.0, "ethos-u65": 550.0, "ethos-u85": 700.0}
#: Vela rewrites these away: no data moves (a PAD becomes the next convolution's padding).
_FREE = _types("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2")
#: Data movement Vela runs as NPU copies, at the rate of simple element-wise work.
_MOVE = _types("CONCATENATION", "MIRROR_PAD", "TRANSPOSE", "SLICE",
               "STRIDED_SLICE", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "TILE", "GATHER",
               "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR")
_WEIGHTED = _MATMUL | _DEPTHWISE
#: Operators whose narrow graph inputs and outputs in DRAM were measured to move in short
#: transfers (:data:`_NARROW_READ_BYTES`); an element-wise MUL reading an image or a
#: RESIZE writing one channel does not.
_NARROW_MOVERS = _SPATIAL | _DEPTHWISE
#: Operators whose constant inputs are data (an operand), not parameters such as a shape.
_OPERAND = _ADD | _MUL | _types("MAXIMUM", "MINIMUM")
#: Activations Vela fuses into the operator before them when they are its only reader: the
#: producer's output stage applies them, so the pair costs the larger of the two.
_FUSABLE = _types("RELU", "RELU6", "LOGISTIC", "TANH", "LEAKY_RELU", "HARD_SWISH")
_FUSES = _WEIGHTED | _POOL | _ADD | _MUL
#: Ethos-U85 also chains a binary element-wise operator into the operator that produces one
#: of its operands (a residual ADD after a convolution, a BatchNorm's ADD after its MUL):
#: Vela 5.2 gives the chained operator no cycles of its own.
_CHAINABLE = _ADD | _MUL
_CHAINING_FAMILIES = ("ethos-u85",)

#: Graph inputs and outputs of fewer than 8 channels live in DRAM in NHWC when SRAM is a
#: cache (``Dedicated_Sram``), and Vela moves them in transfers far shorter than a burst:
#: the bytes each family's performance model charges at least when a convolution reads
#: or writes one (:data:`_NARROW_MOVERS`), per element read and per element or position
#: written. Lower bounds of Vela 5.2 on toy graphs whose 1-4-channel input a convolution
#: or a depthwise convolution read (64-224 px; Ethos-U65-256 19-24 bytes per element,
#: Ethos-U85-256 35-88, taken as 16: at 32 the bound ranked generated image classifiers
#: worse) and whose 1-3-channel output a 1x1 convolution wrote (Ethos-U65 16 bytes per
#: element, Ethos-U85 36 per position): a 224x224x3 image costs Ethos-U65's first
#: convolution 7.7x the cycles its arithmetic would.
_NARROW_CHANNELS = 8
_NARROW_READ_BYTES = {"ethos-u65": 16.0, "ethos-u85": 16.0}
#: A CONV_2D reading a narrow image fetches it once per block of its output, so windows
#: overlapping at the block edges are read again, and again for each block of output
#: channels: per family, (bytes per element read by a 1x1 window, the output block's
#: height and width, the output channels per block at stride 1 and at stride 2 or more, 0
#: where no re-read was seen, the least kernel size with re-reads at stride 2 or more).
#: Lower bounds of Vela 5.2's DRAM cycles for the first convolution of 96-160 px
#: 3-channel images (1x1-7x7 windows, strides 1 and 2, 8-64 output channels) in a
#: network: Ethos-U65 charges (22/20)^2 of the single read for a 3x3 window at stride 1
#: and doubles it at 32 output channels; Ethos-U85 reads 29 bytes per element for a 1x1
#: window and 2.6x that for 7x7. A ResNet's 7x7 stride-2 stem on 32 channels cost
#: Ethos-U65 3.5x the single read, which the roofline had taken for its whole cost.
_STEM_READS = {"ethos-u65": (16.0, 24.0, (16.0, 16.0), 7.0),
               "ethos-u85": (28.0, 12.0, (16.0, 32.0), 3.0)}
_NARROW_WRITE_BYTES = {"ethos-u65": (16.0, "element"), "ethos-u85": (32.0, "position")}

#: Ethos-U85 stores a concatenation whose channel offsets are not multiples of the 16-channel
#: brick in NHWC; when it is larger than the SRAM cache (``arena_cache_size``) it lives in
#: DRAM, and an operator reading it there fetches each 16-byte slice of a position as a
#: transfer of its own, each paying DRAM's whole burst (128 bytes: 8x the bytes). Vela 5.2's
#: per-layer tables on toy graphs (1x1 convolutions concatenated, 96-144 px, 24-144
#: channels) charge the reader 8.0x the DRAM traffic of the same graph with aligned offsets,
#: and that aligned traffic is itself 4.1-5.7 bytes per byte of the input per pass (Vela
#: re-reads the input per block), so: burst / 16 x 3.5 = 28 bytes of DRAM per byte of the
#: concatenation and pass. Passes (:func:`_misaligned_passes`): per 16 output channels for
#: square convolutions of odd size >= 3 at stride 1 (a 3x3 one with 16, 24, 48, 64, 96
#: outputs: 46, 92, 137, 183, 293 bytes per byte), one for them at stride 2, for depthwise
#: convolutions and pools of more than one tap and for element-wise operators (26-62 per
#: operand, most 30-46); none for 1x1 operators (3-29) and other kernels (10-200). Checked
#: on 483 U85 training graphs (random graphs and zoo; 429 get a charge) whose 452 readers
#: have a Vela per-layer figure of their own: the roofline is above it for 5 (a 5x5
#: convolution Vela ran at one pass, two MULs on maps 3 and 8 wide, a stride-2 5x5
#: convolution and a pool), and no graph's total is newly above Vela's latency; their
#: median Vela / roofline goes from 3.4 to 2.1. Ethos-U65 reads such a concatenation at its
#: raw bytes; maps of at most one brick (16 channels) too.
_MISALIGNED_FAMILIES = ("ethos-u85",)
_BRICK_CHANNELS = 16
_MISALIGNED_SLICE_BYTES = 16  # bytes of a position one transfer moves (one brick deep)
_SPILLED_READS = 3.5  # DRAM bytes per byte of a spilled input, per pass, aligned (4.1-5.7)
_CONCAT = _types("CONCATENATION")
_ELEMENTWISE_READER = _ADD | _MUL | _types("MAXIMUM", "MINIMUM")

_F = {name: i for i, name in enumerate(NODE_FEATURES)}
_GRAPH_INPUT_BYTES = GLOBAL_FEATURES.index("input_bytes")


@dataclass(frozen=True, slots=True)
class Roofline:
    """Per-operator cost estimates of one graph on one target, in NPU cycles.

    ``memory_cycles`` maps each memory of the target to the cycles its traffic (weights
    and feature maps alike) takes per operator; ``weight_cycles`` and
    ``feature_map_cycles`` split the same traffic by kind, each summed over memories.
    """

    compute_cycles: np.ndarray  # float64 [operators]
    weight_cycles: np.ndarray
    feature_map_cycles: np.ndarray
    memory_cycles: dict[str, np.ndarray]
    op_cycles: np.ndarray  # max(compute, each memory's cycles)
    core_clock_hz: float
    sram_overflow_bytes: float  # live activations beyond the SRAM limit at the worst operator

    @property
    def total_cycles(self) -> float:
        """The graph's cycles: the sum of its operators'."""
        return float(self.op_cycles.sum())

    @property
    def op_ms(self) -> np.ndarray:
        """Each operator's cycles in milliseconds: the anchor of an additive readout."""
        return self.op_cycles / self.core_clock_hz * 1e3

    @property
    def total_ms(self) -> float:
        """The graph's time in milliseconds at the core clock."""
        return self.total_cycles / self.core_clock_hz * 1e3

    @property
    def floor_cycles(self) -> float:
        """The larger of the summed compute and each memory's summed traffic.

        Below :attr:`total_cycles`, and safer as a lower bound: a schedule that fetches an
        operator's weights while its predecessor computes (Vela buffers weights so) can beat
        the sum of per-operator maxima, never this.
        """
        sums = [self.compute_cycles.sum(), *(c.sum() for c in self.memory_cycles.values())]
        return float(max(sums))

    def bound_by(self) -> list[str]:
        """Per operator, what limits it: "compute" or the name of the slowest memory."""
        names = ["compute", *self.memory_cycles]
        stack = np.vstack([self.compute_cycles, *self.memory_cycles.values()])
        return [names[i] for i in stack.argmax(axis=0)]


class _Nodes:
    """A graph's node features in their own units, each column by name.

    Counts come back from log1p and are rounded (they are integers); converted once for
    all of the roofline's terms.
    """

    __slots__ = ("kind", "units", "edges", "graph_input_bytes")

    def __init__(self, g: GraphFeatures) -> None:
        self.kind = g.op_types
        self.units = g.nodes.astype(np.float64)
        self.units[:, _LOG_MASK] = np.rint(np.expm1(self.units[:, _LOG_MASK]))
        self.edges = g.edges
        self.graph_input_bytes = float(np.expm1(np.float64(g.globals[_GRAPH_INPUT_BYTES])))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.units[:, _F[name]]


def _pad(x: np.ndarray, k: float) -> np.ndarray:
    return np.ceil(np.maximum(x, 1.0) / k) * k


def compute_cycles(g: GraphFeatures, hw: Hardware) -> np.ndarray:
    """NPU cycles each operator's arithmetic takes at full use of its padded blocks."""
    return _compute_cycles(_Nodes(g), hw)


def _compute_cycles(x: _Nodes, hw: Hardware) -> np.ndarray:
    kind = x.kind
    acc = hw.accelerator
    ub_h, ub_w, ub_c = acc.ofm_ublock
    macs = x["macs"]
    out_h, out_w, out_c = x["out_h"], x["out_w"], x["out_c"]
    kh, kw = np.maximum(x["kernel_h"], 1), np.maximum(x["kernel_w"], 1)
    out_elems = x["out_elements"]
    cycles = np.zeros(len(kind))

    # Convolutions and matrix products: MACs with every dimension padded to its block.
    m = _MATMUL[kind]
    spatial = _SPATIAL[kind]
    rows = np.where(spatial, _pad(out_h, ub_h) * _pad(out_w, ub_w), out_elems / np.maximum(
        out_c, 1))
    window = np.where(spatial, kh * kw, 1)
    # Input channels per group (the dot product's length), an integer: MACs come back
    # from float32 log1p features a few parts in 10^7 off. A transposed convolution runs
    # over the whole upsampled output with all its input channels.
    depth = np.maximum(np.rint(macs / (np.maximum(out_elems, 1) * window)), 1)
    depth = np.where(_TRANSPOSE_CONV[kind], x["in_c"], depth)
    in_pad = 1 if acc.family in _UNPADDED_INPUT else _DOT_PRODUCT
    # A grouped CONV_2D (its filters see in_c / groups channels) runs as one convolution
    # per group, each into its own slice of the output, padded to the micro-block alone.
    conv_groups = np.where(_GROUPED[kind], np.maximum(np.rint(x["in_c"] / depth), 1), 1)
    out_padded = conv_groups * _pad(out_c / conv_groups, ub_c)
    padded = rows * out_padded * window * _pad(depth, in_pad)
    cycles[m] = np.maximum(padded, macs)[m] / acc.macs_per_cycle
    split = _GROUPED[kind] & (conv_groups >= 2)
    cycles[split] += conv_groups[split] * _GROUP_CYCLES.get(acc.family, 0.0)

    # Depthwise, reductions and pooling: one channel per lane, no dot product across
    # channels; a depthwise step of 4 kernel elements takes 4 cycles per micro-block of the
    # output plane, and at least the accumulators' write-back.
    ublocks = np.ceil(np.maximum(out_h, 1) / ub_h) * np.ceil(np.maximum(out_w, 1) / ub_w)
    groups = np.ceil(np.maximum(out_c, 1) / ub_c)
    per_step = np.maximum(_WRITEBACK_CYCLES * ub_c / _DOT_PRODUCT,
                          ublocks * _DEPTHWISE_KERNEL_STEP * ub_h * ub_w * ub_c * _DOT_PRODUCT
                          / acc.macs_per_cycle)
    reduced = np.maximum(np.rint(x["in_elements"] / np.maximum(out_elems, 1)), 1)
    window_elems = np.where(_REDUCE[kind], reduced, kh * kw)
    steps = np.ceil(window_elems / _DEPTHWISE_KERNEL_STEP)
    d = (_DEPTHWISE | _REDUCE)[kind]
    cycles[d] = (groups * steps * per_step)[d]
    lanes = acc.macs_per_cycle / _DOT_PRODUCT
    planes = _pad(out_h, ub_h) * _pad(out_w, ub_w) * _pad(out_c, ub_c)
    p = _POOL[kind]
    cycles[p] = (planes * np.maximum(kh * kw, _POOL_MIN_WINDOW))[p] / lanes

    add, mul, simple, lut = _elementwise_cycles(hw)
    if acc.family in _ELEMENTWISE_MATMUL:
        b = _BATCH_MATMUL[kind]
        cycles[b] = macs[b] * mul
    for mask, per_element in ((_ADD, add), (_MUL, mul), (_SIMPLE | _MOVE, simple), (_LUT, lut)):
        e = mask[kind]
        cycles[e] = out_elems[e] * per_element
    # ...and its fused activation then as a pass over the whole output of its own: Vela
    # charged a ReLU after a 3-group 3x3 convolution on 32x32x24 more than the convolutions.
    for flags, per_element in ((("act_relu", "act_relu6", "act_relu_n1_to_1"), simple),
                               (("act_tanh",), lut)):
        e = split & (sum(x[f] for f in flags) > 0)
        cycles[e] += out_elems[e] * per_element
    soft = _SOFTMAX[kind]
    per_element, per_row, per_op = _softmax_cycles(acc)
    last_axis_rows = out_elems / np.maximum(out_c, 1)
    cycles[soft] = (per_op + out_elems * per_element + last_axis_rows * per_row)[soft]
    return cycles


def _softmax_cycles(acc) -> tuple[float, float, float]:
    """(cycles per element, per row, per operator) of a SOFTMAX on this accelerator."""
    found = _SOFTMAX_CYCLES.get(acc.family, _SOFTMAX_CYCLES["ethos-u55"])
    scale = min(1.0, _SOFTMAX_MEASURED_ON.get(acc.family, 128) / acc.macs_per_cycle)
    return found[0] * scale, found[1] * scale, found[2] * scale


def _elementwise_cycles(hw: Hardware) -> tuple[float, float, float, float]:
    acc = hw.accelerator
    table = _ELEMENTWISE_CYCLES.get(acc.name)
    if table is None:  # Ethos-U85: Ethos-U65-256's, scaled by MACs per cycle
        scale = 256 / acc.macs_per_cycle
        table = tuple(c * scale for c in _ELEMENTWISE_CYCLES["ethos-u65-256"])
    return table  # type: ignore[return-value]


def _constant_bytes(x: _Nodes, hw: Hardware) -> np.ndarray:
    """Bytes of constants each operator reads from the weights' memory."""
    kind = x.kind
    param_bytes = x["param_bytes"]
    params = x["params"]
    weighted = _WEIGHTED[kind]
    read = np.where(weighted, param_bytes, 0.0)
    # Constant operands of other operators; a scalar is an immediate value, never read.
    operand = _OPERAND[kind] & (params > 1)
    transfer = _BROADCAST_TRANSFER.get(hw.accelerator.family)
    if transfer is not None:
        per_element = param_bytes / np.maximum(params, 1)
        out_c = np.maximum(x["out_c"], 1)
        elements = x["out_elements"] / out_c * _pad(out_c, _BROADCAST_BRICK)
        burst = hw.memory(hw.weights_memory).burst_length_bytes
        transfers = burst / min(burst, transfer)
        broadcast = np.maximum(elements * per_element * transfers, param_bytes)
        streamed = ((x["out_elements"] / out_c > _BROADCAST_ONCE_POSITIONS)
                    & (out_c > _BROADCAST_BRICK))
        read = np.where(operand & streamed, broadcast, read)
    else:
        read = np.where(operand, param_bytes, read)
    return read


def _graph_input_reads(x: _Nodes) -> np.ndarray:
    """Bytes of the graph's inputs each operator reads, per operator.

    An operator with more activation inputs than operators feeding it reads a graph input.
    """
    n = len(x.kind)
    producers = np.bincount(x.edges[1], minlength=n) if x.edges.size else np.zeros(n)
    return np.where(x["activation_inputs"] > producers,
                    np.minimum(x.graph_input_bytes, x["input_bytes"]), 0.0)


def _feature_map_bytes(x: _Nodes, read: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes of graph inputs and outputs, bytes of the other feature maps) per operator.

    ``read``: :func:`_graph_input_reads`.
    """
    moved = x["input_bytes"] + x["output_bytes"]
    moved[_FREE[x.kind]] = 0.0
    io = read + np.where(x["consumers"] == 0, x["output_bytes"], 0.0)
    io = np.minimum(io, moved)
    return io, moved - io


def _narrow_io_bytes(x: _Nodes, hw: Hardware, read: np.ndarray) -> np.ndarray:
    """Bytes moved beyond the raw ones for graph inputs and outputs of few channels in DRAM.

    For the memory modes that keep them in DRAM (``hw.spilling``, where the caller asks)
    and the families measured (:data:`_NARROW_READ_BYTES`); 0 elsewhere. ``read``:
    :func:`_graph_input_reads`.
    """
    kind, n = x.kind, len(x.kind)
    family = hw.accelerator.family
    extra = np.zeros(n)
    if family not in _NARROW_READ_BYTES:
        return extra
    in_bytes = np.maximum(x["in_bits"] * 32.0, 8.0) / 8.0  # the feature holds bits / 32
    narrow_in = (x["in_c"] < _NARROW_CHANNELS) & _NARROW_MOVERS[kind]
    per_element = np.where(_CONV_2D[kind], _stem_read_bytes(x, family),
                           _NARROW_READ_BYTES[family])
    extra += np.where(narrow_in, np.maximum(read / in_bytes * per_element - read, 0.0), 0.0)
    per, unit = _NARROW_WRITE_BYTES[family]
    out_c = np.maximum(x["out_c"], 1.0)
    units = x["out_elements"] if unit == "element" else x["out_elements"] / out_c
    written = (x["consumers"] == 0) & (out_c < _NARROW_CHANNELS) & _NARROW_MOVERS[kind]
    extra += np.where(written, np.maximum(units * per - x["output_bytes"], 0.0), 0.0)
    return extra


def _misaligned_concatenations(x: _Nodes, among: np.ndarray | None = None) -> np.ndarray:
    """Which operators are channel concatenations with an offset off the 16-channel brick.

    From the edges: a CONCATENATION all of whose inputs come from operators (edges are in
    input order), whose inputs' channels add up to its own (the channel axis) and one of
    whose offsets (the running sum before each input) is not a multiple of 16, on more
    than one brick of channels. A concatenation reading a graph input is left out.
    ``among``: only these operators are looked at (a DenseNet has dozens of
    concatenations, few of them spilled).
    """
    kind, n = x.kind, len(x.kind)
    out = np.zeros(n, dtype=bool)
    concat = np.flatnonzero(_CONCAT[kind] if among is None else _CONCAT[kind] & among)
    if not concat.size or not x.edges.size:
        return out
    producer, consumer = x.edges
    out_c = np.rint(x["out_c"]).astype(np.int64)
    for i in concat:
        parts = out_c[producer[consumer == i]]
        if (len(parts) < 2 or len(parts) != x["activation_inputs"][i]
                or parts.sum() != out_c[i] or out_c[i] <= _BRICK_CHANNELS):
            continue
        out[i] = bool(np.any(np.cumsum(parts)[:-1] % _BRICK_CHANNELS))
    return out


def _misaligned_passes(x: _Nodes) -> np.ndarray:
    """Passes an operator makes over an input it reads in short transfers.

    See :data:`_MISALIGNED_FAMILIES`: per 16 output channels for a square convolution of odd
    size 3x3 or more at stride 1, one at a larger stride, one for depthwise convolutions and
    pools of more than one tap and for element-wise operators; none for convolutions of
    one tap (1x1) and of even or non-square kernels, for which Vela charged from 10 to 200
    bytes of DRAM per byte (a deeper block of outputs at times, fewer passes).
    """
    kind = x.kind
    kh, kw = np.maximum(x["kernel_h"], 1), np.maximum(x["kernel_w"], 1)
    stride1 = (x["stride_h"] <= 1) & (x["stride_w"] <= 1)
    out_c = np.maximum(x["out_c"], 1)
    conv = _CONV_2D[kind] & (kh == kw) & (kh >= 3) & (kh % 2 == 1)
    passes = np.where(conv, np.where(stride1, np.ceil(out_c / _BRICK_CHANNELS), 1.0), 0.0)
    passes = np.where((_DEPTHWISE | _POOL)[kind] & (kh * kw > 1), 1.0, passes)
    return np.where(_ELEMENTWISE_READER[kind], 1.0, passes)


def _misaligned_read_bytes(x: _Nodes, hw: Hardware) -> np.ndarray:
    """Extra DRAM bytes each operator moves reading a spilled, misaligned concatenation.

    Beyond the raw bytes, per reading operator (:data:`_MISALIGNED_FAMILIES`; 0 elsewhere).
    """
    n = len(x.kind)
    extra = np.zeros(n)
    if hw.accelerator.family not in _MISALIGNED_FAMILIES or not hw.spilling or not n:
        return extra
    spilled = _misaligned_concatenations(x, x["output_bytes"] > hw.arena_cache_bytes)
    if not spilled.any():
        return extra
    producer, consumer = x.edges
    edge = spilled[producer]
    burst = hw.memory(hw.feature_map_memory).burst_length_bytes
    per_byte = burst / min(burst, _MISALIGNED_SLICE_BYTES) * _SPILLED_READS
    passes = _misaligned_passes(x)[consumer[edge]]
    read = x["output_bytes"][producer[edge]]
    np.add.at(extra, consumer[edge], np.maximum(per_byte * passes - 1.0, 0.0) * read)
    return extra


def _stem_read_bytes(x: _Nodes, family: str) -> np.ndarray:
    """Bytes a CONV_2D moves per element of a narrow image it reads (:data:`_STEM_READS`)."""
    per, block, (depth_1, depth_2), least_kernel = _STEM_READS[family]
    kh, kw = np.maximum(x["kernel_h"], 1), np.maximum(x["kernel_w"], 1)
    sh, sw = np.maximum(x["stride_h"], 1), np.maximum(x["stride_w"], 1)
    overlap = (((block - 1) * sh + kh) / (block * sh)) * (((block - 1) * sw + kw) / (block * sw))
    strided = np.maximum(sh, sw) >= 2
    depth = np.where(strided, depth_2, depth_1)
    again = (np.maximum(kh, kw) >= np.where(strided, least_kernel, 3.0)) & (depth > 0)
    blocks = np.where(again, np.ceil(np.maximum(x["out_c"], 1) / np.maximum(depth, 1)), 1.0)
    return per * overlap * blocks


def fused(g: GraphFeatures, hw: Hardware) -> np.ndarray:
    """Which operators Vela fuses into an operator they read from (none of their own cost)."""
    return _fused(_Nodes(g), hw)[0]


def _fused(x: _Nodes, hw: Hardware) -> tuple[np.ndarray, np.ndarray]:
    """(fused operators, the operator each is fused into: -1 where none)."""
    kind, n = x.kind, len(x.kind)
    source = np.full(n, -1)
    ok = np.zeros(n, dtype=bool)
    if not x.edges.size:
        return ok, source
    producer, consumer = x.edges
    sole = np.bincount(consumer, minlength=n) == 1  # the activation reads one operator...
    only_reader = x["consumers"] == 1  # ...which nothing else reads
    into = only_reader[producer] & _FUSES[kind[producer]]
    own = _FUSABLE[kind] & sole
    if hw.accelerator.family in _CHAINING_FAMILIES:
        own |= _CHAINABLE[kind]
    edge = into & own[consumer]
    source[consumer[edge]] = producer[edge]
    ok[consumer[edge]] = True
    return ok, source


def estimate_features(g: GraphFeatures, hw: Hardware, on_npu: np.ndarray | None = None,
                      weight_bytes: np.ndarray | None = None) -> Roofline:
    """The roofline of a featurized graph; operators outside ``on_npu`` cost nothing.

    ``weight_bytes`` replaces the raw bytes of convolution and fully connected weights
    (:func:`entropy_weight_bytes` gives a compressed size from the IR).
    """
    n = len(g.op_types)
    x = _Nodes(g)
    compute = _compute_cycles(x, hw)
    const = _constant_bytes(x, hw)
    if weight_bytes is not None:
        weighted = _WEIGHTED[x.kind]
        const[weighted] = np.asarray(weight_bytes, dtype=np.float64)[weighted]
    read = _graph_input_reads(x)
    io, inner = _feature_map_bytes(x, read)
    live = np.expm1(graph_live_bytes(g).astype(np.float64)) if n else np.zeros(0)
    limit = float(hw.arena_cache_bytes)
    fast = hw.cache_memory
    by_memory = {m.name: np.zeros(n) for m in hw.memories}
    fm_cycles = np.zeros(n)
    if hw.spilling:
        kept = np.where(live > limit, limit / np.maximum(live, 1.0), 1.0)
        fm = {fast: inner * kept,
              hw.feature_map_memory: io + inner * (1 - kept) + _narrow_io_bytes(x, hw, read)
              + _misaligned_read_bytes(x, hw)}
    else:  # the arena itself is the fast memory; nothing can spill out of it
        fm = {hw.feature_map_memory: io + inner}
    for name, nbytes in fm.items():
        cycles = nbytes / hw.bytes_per_cycle(name)
        by_memory[name] += cycles
        fm_cycles += cycles
    weights = const / hw.bytes_per_cycle(hw.weights_memory)
    by_memory[hw.weights_memory] += weights
    off, source = _fused(x, hw)
    # A fused activation's work moves into its producer's output stage, run in parallel.
    compute[source[off]] = np.maximum(compute[source[off]], compute[off])
    if on_npu is not None:
        off |= ~np.asarray(on_npu, dtype=bool)
    if off.any():
        for a in (compute, weights, fm_cycles, *by_memory.values()):
            a[off] = 0.0
    op = np.max(np.vstack([compute, *by_memory.values()]), axis=0) if n else np.zeros(0)
    overflow = float(max(live.max() - limit, 0.0)) if n else 0.0
    return Roofline(compute, weights, fm_cycles, by_memory, op, hw.core_clock_hz, overflow)


def estimate(model: Model, hw: Hardware, on_npu: np.ndarray | None = None, *,
             compressed_weights: bool = False) -> Roofline:
    """The roofline of the main subgraph of ``model`` on ``hw``.

    Args:
        model: our IR (:func:`perfsage.graph.read_model`).
        hw: the target's hardware (:func:`perfsage.targets.hardware.hardware`).
        on_npu: per operator, False for those Vela leaves to the CPU (they cost the NPU
            nothing); None counts every operator.
        compressed_weights: count weights at their entropy-coded size
            (:func:`entropy_weight_bytes`) instead of their raw bytes, as Vela reads its
            compressed encoding of them.
    """
    weights = entropy_weight_bytes(model) if compressed_weights else None
    return estimate_features(featurize(model), hw, on_npu, weights)


#: Weight values sampled per tensor for its entropy (a strided sample beyond this).
_ENTROPY_SAMPLE = 1 << 16


def entropy_weight_bytes(model: Model) -> np.ndarray:
    """Per operator, its constant inputs with the weights at their entropy-coded size.

    Vela stores weights compressed (an entropy coder over the int8 values) and reads that
    encoding; no symbol-by-symbol code of the values is shorter than their zeroth-order
    entropy, so this is a lower estimate of it: 0.89 of the raw bytes against Vela's 0.91 on
    Keras' ResNet18 (random weights), 0.97 against 1.01 on a zoo model. The largest constant
    input (the weights) is coded, the others (bias, a shape) count raw; operators without
    weights count 0.
    """
    sub = model.main
    out = np.zeros(len(sub.operators))
    for op in sub.operators:
        consts = [sub.tensors[t] for t in dict.fromkeys(op.inputs)
                  if t >= 0 and sub.tensors[t].is_constant]
        if not consts or op.opcode not in _ENTROPY_CODED:
            continue
        w = max(consts, key=lambda t: t.nbytes)
        out[op.index] = _entropy_bytes(w) + sum(t.nbytes for t in consts if t is not w)
    return out


_ENTROPY_CODED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                            "TRANSPOSE_CONV", "CONV_3D"})


def _entropy_bytes(t: Tensor) -> float:
    """Bytes of a tensor's values at their zeroth-order entropy (8-bit values only)."""
    if t.bits != 8 or t.data is None:
        return float(t.nbytes)
    values = t.data.view(np.uint8).ravel()
    sample = values[:: max(1, len(values) // _ENTROPY_SAMPLE)]
    counts = np.bincount(sample, minlength=256)
    p = counts[counts > 0] / sample.size
    return float(values.size * -(p * np.log2(p)).sum() / 8)


def node_columns(g: GraphFeatures, hw: Hardware) -> np.ndarray:
    """float32 [operators, len(ROOFLINE_COLUMNS)]: log1p of each roofline cost in cycles.

    For a network's node features: computed from the node features alone, like
    ``features.channel_alignment``, so adding them changes no existing column.
    """
    r = estimate_features(g, hw)
    return np.log1p(np.column_stack([r.compute_cycles, r.weight_cycles, r.feature_map_cycles,
                                     r.op_cycles])).astype(np.float32)
