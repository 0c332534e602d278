"""Build TFLite models layer by layer, without TensorFlow.

Generating a large random-network dataset through Keras and the TFLite converter costs
about a second per model; writing the flatbuffer directly from a small layer vocabulary
costs milliseconds. :class:`ModelBuilder` records layers with Keras-like calls, checks
their arguments and shapes as TFLite would, draws random weights from one seeded generator
(the same calls and seed give byte-identical models), and writes an int8 model -- fully
quantised, per-channel weights, int32 biases -- or a float32 one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perfsage.builder import estimate, quant, shapes
from perfsage.builder.estimate import Stats
from perfsage.builder.flatbuffer import serialize
from perfsage.builder.network import Bias, Network, Op, Tensor
from perfsage.errors import UsageError
from perfsage.graph.schema import fb

DTYPES = ("int8", "float32")
_FUSED = {None: fb.ActivationFunctionType.NONE, "relu": fb.ActivationFunctionType.RELU,
          "relu6": fb.ActivationFunctionType.RELU6}
_PADDING = {"same": fb.Padding.SAME, "valid": fb.Padding.VALID}
_RESIZE = {"nearest": ("RESIZE_NEAREST_NEIGHBOR", fb.ResizeNearestNeighborOptionsT),
           "bilinear": ("RESIZE_BILINEAR", fb.ResizeBilinearOptionsT)}
_BINARY = {"ADD": (estimate.added, fb.AddOptionsT), "MUL": (estimate.multiplied, fb.MulOptionsT),
           "SUB": (estimate.subtracted, fb.SubOptionsT)}
#: Output parameters TFLite mandates for int8 TANH.
_TANH_PARAMS = (1.0 / 128.0, 0)
_SERIAL = itertools.count()  # tells builders apart, so one's tensors are refused by another


@dataclass(frozen=True, slots=True)
class TensorRef:
    """A tensor of the model being built: pass it to later layers or to ``build``."""

    index: int
    shape: tuple[int, ...]
    owner: int  # serial number of the ModelBuilder that made it

    def __repr__(self) -> str:
        return f"TensorRef({self.index}, shape={self.shape})"


@dataclass(frozen=True, slots=True)
class _Window:
    """A convolution's checked input, kernel, output (h, w) and shared option fields."""

    tensor: Tensor
    kernel: tuple[int, int]
    out: tuple[int, int]
    options: dict[str, int]
    seen: Stats


def _options(cls: type, **fields: object) -> object:
    """An object-API options table with the given fields set."""
    options = cls()
    for name, value in fields.items():
        setattr(options, name, value)
    return options


class ModelBuilder:
    """Records layers and writes them as a ``.tflite`` model.

    Args:
        seed: seeds every random weight; equal seeds and calls give equal bytes.
        dtype: "int8" (int8 activations and weights, int32 biases) or "float32".
    """

    def __init__(self, seed: int = 0, dtype: str = "int8") -> None:
        shapes.choice("ModelBuilder", "dtype", dtype, DTYPES)
        self._rng = np.random.default_rng(seed)
        self._int8 = dtype == "int8"
        self._act_dtype = dtype
        self._net = Network()
        self._counts: dict[str, int] = {}
        self._id = next(_SERIAL)

    # -- bookkeeping -------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        n = self._counts.get(kind, 0)
        self._counts[kind] = n + 1
        return f"{kind}_{n}"

    def _get(self, layer: str, ref: object) -> Tensor:
        if not isinstance(ref, TensorRef) or ref.owner != self._id:
            raise shapes.fail(layer, f"expected a TensorRef from this ModelBuilder, got {ref!r}")
        return self._net.tensors[ref.index]

    def _const(self, name: str, data: np.ndarray, scales: np.ndarray | None = None,
               axis: int = 0) -> int:
        dtype = str(data.dtype)
        return self._net.add(Tensor(name, tuple(data.shape), dtype, data=data,
                                    scales=scales, axis=axis))

    def _int32(self, name: str, values: Sequence[int] | np.ndarray) -> int:
        return self._const(name, np.asarray(values, dtype=np.int32))

    def _emit(self, opcode: str, name: str, inputs: list[int], shape: tuple[int, ...],
              stats: Stats, options: object | None = None, tied: bool = False,
              fixed: tuple[float, int] | None = None) -> TensorRef:
        """Record an operator writing one new activation tensor."""
        out = self._net.add(Tensor(name, shape, self._act_dtype,
                                   stats=stats.as_channels(shape[-1]), fixed=fixed))
        self._net.ops.append(Op(opcode, tuple(inputs), (out,), options, tied))
        return TensorRef(out, shape, self._id)

    def _linear(self, name: str, kind: str, inp: int, weights: quant.LinearLayer,
                activation: str | None, bias: bool, options: object,
                shape: tuple[int, ...]) -> TensorRef:
        """Record CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED with weights and bias."""
        bias_values = weights.bias if bias else np.zeros_like(weights.bias)
        mean = weights.mean - (0.0 if bias else weights.bias)
        if self._int8:
            w = self._const(f"{name}/weights", weights.weights, weights.scales, weights.axis)
        else:
            w = self._const(f"{name}/weights", weights.float_weights())
        b = self._net.add(Tensor(f"{name}/bias", (len(bias_values),),
                                 "int32" if self._int8 else "float32",
                                 bias=Bias(bias_values, inp, weights.scales)))
        stats = estimate.activate(mean, weights.std, activation, magnitude=weights.gains)
        return self._emit(kind, name, [inp, w, b], shape, stats, options)

    @staticmethod
    def _activation(layer: str, activation: object) -> str | None:
        return shapes.choice(layer, "activation", activation, list(_FUSED))  # type: ignore

    # -- layers --------------------------------------------------------------------------

    def input(self, shape: Sequence[int]) -> TensorRef:
        """A model input, values expected in [-1, 1] (NHWC for images, batch 1).

        An int8 input is quantised for [-1, 1], or wider when a layer that keeps its input's
        parameters (concat, pad, pool, ...) ties it to a wider tensor.
        """
        shape = shapes.dims("input", "shape", shape)
        if shape[0] != 1:
            raise shapes.fail("input", f"batch must be 1, got shape {shape}")
        name = f"input_{len(self._net.inputs)}"
        index = self._net.add(Tensor(name, shape, self._act_dtype,
                                     stats=estimate.uniform_input(shape[-1])))
        self._net.inputs.append(index)
        return TensorRef(index, shape, self._id)

    def _window(self, layer: str, x: TensorRef, kernel: object, stride: object, dilation: object,
                padding: object) -> _Window:
        """Check a convolution's arguments against its rank-4 input."""
        t = self._get(layer, x)
        shapes.rank(layer, t.shape, 4)
        k = shapes.pair(layer, "kernel", kernel)
        s = shapes.pair(layer, "stride", stride)
        d = shapes.pair(layer, "dilation", dilation)
        pad = shapes.padding(layer, padding)
        out = shapes.window_output(layer, t.shape[1:3], k, s, d, pad)
        common = dict(padding=_PADDING[pad], strideH=s[0], strideW=s[1], dilationHFactor=d[0],
                      dilationWFactor=d[1])
        # What the kernel sees: the input mixed with the zeros of the padding.
        seen = estimate.padded(t.stats, shapes.window_coverage(t.shape[1:3], k, s, d, out))
        return _Window(t, k, out, common, seen)

    def conv2d(self, x: TensorRef, filters: int, kernel: int | tuple[int, int] = 3,
               stride: int | tuple[int, int] = 1, padding: str = "same",
               dilation: int | tuple[int, int] = 1, activation: str | None = None,
               bias: bool = True, *, shift: float = 0.0) -> TensorRef:
        """CONV_2D with ``filters`` outputs; ``bias=False`` writes zeros, as the converter does.

        ``shift`` is a constant added before the activation that the converter folds into
        the bias (a hard sigmoid's +3).
        """
        layer = "conv2d"
        w = self._window(layer, x, kernel, stride, dilation, padding)
        filters = shapes.positive(layer, "filters", filters)
        act = self._activation(layer, activation)
        weights = quant.dense_like(self._rng, filters, w.kernel, w.seen)
        if shift:
            weights = dataclasses.replace(weights, bias=weights.bias + shift,
                                          mean=weights.mean + shift)
        options = _options(fb.Conv2DOptionsT, fusedActivationFunction=_FUSED[act], **w.options)
        return self._linear(self._name(layer), "CONV_2D", x.index, weights, act, bias, options,
                            (1, *w.out, filters))

    def depthwise_conv2d(self, x: TensorRef, kernel: int | tuple[int, int] = 3,
                         stride: int | tuple[int, int] = 1, padding: str = "same",
                         depth_multiplier: int = 1, dilation: int | tuple[int, int] = 1,
                         activation: str | None = None, bias: bool = True) -> TensorRef:
        """DEPTHWISE_CONV_2D with ``channels * depth_multiplier`` outputs."""
        layer = "depthwise_conv2d"
        w = self._window(layer, x, kernel, stride, dilation, padding)
        dm = shapes.positive(layer, "depth_multiplier", depth_multiplier)
        act = self._activation(layer, activation)
        weights = quant.depthwise(self._rng, w.kernel, dm, w.seen)
        options = _options(fb.DepthwiseConv2DOptionsT, depthMultiplier=dm,
                           fusedActivationFunction=_FUSED[act], **w.options)
        return self._linear(self._name(layer), "DEPTHWISE_CONV_2D", x.index, weights, act, bias,
                            options, (1, *w.out, w.tensor.shape[3] * dm))

    def dense(self, x: TensorRef, units: int, activation: str | None = None,
              bias: bool = True) -> TensorRef:
        """FULLY_CONNECTED on a ``[rows, n]`` input, row by row (reshape feature maps first).

        One row is a classifier's flattened features; several are time steps. A rank-3
        ``[batch, tokens, n]`` input keeps its dimensions (``keep_num_dims``, version 5), as
        the converter writes a Keras Dense on a sequence (transformers).
        """
        layer = "dense"
        t = self._get(layer, x)
        if len(t.shape) != 3:
            shapes.rank(layer, t.shape, 2, "; reshape it to (1, -1) first")
        units = shapes.positive(layer, "units", units)
        act = self._activation(layer, activation)
        weights = quant.dense_like(self._rng, units, (), t.stats)
        options = _options(fb.FullyConnectedOptionsT, fusedActivationFunction=_FUSED[act])
        if len(t.shape) == 3:
            options.keepNumDims = True
        return self._linear(self._name(layer), "FULLY_CONNECTED", x.index, weights, act, bias,
                            options, (*t.shape[:-1], units))

    def _binary(self, layer: str, opcode: str, a: TensorRef, c: TensorRef,
                activation: str | None) -> TensorRef:
        ta, tc = self._get(layer, a), self._get(layer, c)
        act = self._activation(layer, activation)
        shape = shapes.broadcast(layer, ta.shape, tc.shape)
        sa, sc = ta.stats.as_channels(shape[-1]), tc.stats.as_channels(shape[-1])
        combine, cls = _BINARY[opcode]
        return self._emit(opcode, self._name(layer), [a.index, c.index], shape,
                          combine(sa, sc, act), _options(cls, fusedActivationFunction=_FUSED[act]))

    def add(self, a: TensorRef, c: TensorRef, activation: str | None = None) -> TensorRef:
        """ADD of equal shapes (or one side broadcast along size-1 dimensions)."""
        return self._binary("add", "ADD", a, c, activation)

    def mul(self, a: TensorRef, c: TensorRef, activation: str | None = None) -> TensorRef:
        """MUL; one operand may broadcast, e.g. a [1, 1, 1, C] gate over [1, H, W, C]."""
        return self._binary("mul", "MUL", a, c, activation)

    def concat(self, xs: Sequence[TensorRef], axis: int = -1) -> TensorRef:
        """CONCATENATION along ``axis``; all inputs share the output's int8 parameters."""
        layer = "concat"
        if isinstance(xs, TensorRef) or not isinstance(xs, Sequence) or len(xs) < 1:
            raise shapes.fail(layer, "needs a non-empty list of tensors")
        ts = [self._get(layer, x) for x in xs]
        first = ts[0].shape
        ax = shapes.axis(layer, axis, len(first))
        for t in ts[1:]:
            if len(t.shape) != len(first) or any(
                    a != b for i, (a, b) in enumerate(zip(t.shape, first, strict=True)) if i != ax):
                raise shapes.fail(layer, f"shapes {first} and {t.shape} differ outside axis {ax}")
        shape = tuple(sum(t.shape[ax] for t in ts) if i == ax else n for i, n in enumerate(first))
        if ax == len(first) - 1:
            stats = estimate.concatenated([t.stats for t in ts])
        else:
            stats = estimate.mixed([t.stats for t in ts], [t.shape[ax] for t in ts])
        options = _options(fb.ConcatenationOptionsT, axis=ax)
        return self._emit("CONCATENATION", self._name(layer), [x.index for x in xs], shape,
                          stats, options, tied=True)

    def _pool(self, layer: str, opcode: str, x: TensorRef, pool: int | tuple[int, int],
              stride: int | tuple[int, int], padding: str) -> TensorRef:
        t = self._get(layer, x)
        shapes.rank(layer, t.shape, 4)
        k = shapes.pair(layer, "pool", pool)
        s = shapes.pair(layer, "stride", stride)
        pad = shapes.padding(layer, padding)
        oh, ow = shapes.window_output(layer, t.shape[1:3], k, s, (1, 1), pad)
        n = k[0] * k[1]
        stats = (estimate.averaged if opcode == "AVERAGE_POOL_2D" else estimate.maxed)(t.stats, n)
        options = _options(fb.Pool2DOptionsT, padding=_PADDING[pad], strideH=s[0], strideW=s[1],
                           filterHeight=k[0], filterWidth=k[1])
        return self._emit(opcode, self._name(layer), [x.index], (1, oh, ow, t.shape[3]), stats,
                          options, tied=True)

    def avg_pool(self, x: TensorRef, pool: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] = 2, padding: str = "valid") -> TensorRef:
        """AVERAGE_POOL_2D; the output keeps the input's int8 parameters."""
        return self._pool("avg_pool", "AVERAGE_POOL_2D", x, pool, stride, padding)

    def max_pool(self, x: TensorRef, pool: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] = 2, padding: str = "valid") -> TensorRef:
        """MAX_POOL_2D; the output keeps the input's int8 parameters."""
        return self._pool("max_pool", "MAX_POOL_2D", x, pool, stride, padding)

    def mean(self, x: TensorRef, axes: Sequence[int] = (1, 2), keepdims: bool = True) -> TensorRef:
        """MEAN over ``axes`` (global average pooling with the default axes)."""
        layer = "mean"
        t = self._get(layer, x)
        if shapes.integer(axes) is not None:
            axes = (axes,)
        if not shapes.is_sequence(axes) or len(axes) == 0:
            raise shapes.fail(layer, f"axes must be a non-empty sequence of ints, got {axes!r}")
        ax = sorted({shapes.axis(layer, a, len(t.shape)) for a in axes})
        if len(ax) != len(axes):
            raise shapes.fail(layer, f"axes {tuple(axes)} repeat an axis")
        if keepdims:
            shape = tuple(1 if i in ax else n for i, n in enumerate(t.shape))
        else:
            shape = tuple(n for i, n in enumerate(t.shape) if i not in ax)
        if not shape:
            raise shapes.fail(layer, "reducing every axis without keepdims leaves a scalar")
        n = math.prod(t.shape[i] for i in ax)
        stats = t.stats
        if len(t.shape) - 1 in ax:  # channels reduced too: one pooled distribution
            m, s = stats.pooled()
            stats = Stats(np.array([m]), np.array([s]), stats.lo, stats.hi)
        axes_t = self._int32(self._name("mean_axes"), ax)
        options = _options(fb.ReducerOptionsT, keepDims=bool(keepdims))
        return self._emit("MEAN", self._name(layer), [x.index, axes_t], shape,
                          estimate.mean_stats(stats, n), options)

    def pad(self, x: TensorRef, paddings: Sequence[Sequence[int]]) -> TensorRef:
        """PAD with zeros; ``paddings`` gives (before, after) per dimension."""
        layer = "pad"
        t = self._get(layer, x)
        try:
            p = np.array(paddings, dtype=np.int64)
        except (TypeError, ValueError):
            p = None
        if p is None or p.shape != (len(t.shape), 2) or (p < 0).any():
            raise shapes.fail(layer, f"paddings must be {len(t.shape)} non-negative "
                                     f"(before, after) pairs, got {paddings!r}")
        shape = tuple(int(n + a + b) for n, (a, b) in zip(t.shape, p, strict=True))
        kept = math.prod(t.shape) / math.prod(shape)
        p_t = self._int32(self._name("pad_paddings"), p.astype(np.int32))
        return self._emit("PAD", self._name(layer), [x.index, p_t], shape,
                          estimate.padded(t.stats, kept), tied=True)

    def resize(self, x: TensorRef, size: tuple[int, int], method: str = "nearest") -> TensorRef:
        """RESIZE_NEAREST_NEIGHBOR or RESIZE_BILINEAR to ``size``.

        Half-pixel centres, no corner alignment: what ``tf.image.resize`` writes.
        """
        layer = "resize"
        t = self._get(layer, x)
        shapes.rank(layer, t.shape, 4)
        h, w = shapes.pair(layer, "size", size)
        opcode, cls = _RESIZE[shapes.choice(layer, "method", method, list(_RESIZE))]
        size_t = self._int32(self._name("resize_size"), [h, w])
        options = _options(cls, alignCorners=False, halfPixelCenters=True)
        return self._emit(opcode, self._name(layer), [x.index, size_t], (1, h, w, t.shape[3]),
                          t.stats, options, tied=True)

    def depth_to_space(self, x: TensorRef, block: int = 2) -> TensorRef:
        """DEPTH_TO_SPACE: channels ``C`` become a ``block x block`` patch of ``C / block^2``."""
        layer = "depth_to_space"
        t = self._get(layer, x)
        shapes.rank(layer, t.shape, 4)
        block = shapes.positive(layer, "block", block)
        _, h, w, c = t.shape
        if block < 2 or c % (block * block):
            raise shapes.fail(layer, f"block {block} needs >= 2 and channels ({c}) divisible "
                                     f"by {block * block}")
        cout = c // (block * block)
        # Output channel j gathers input channels j, j + cout, j + 2 cout, ...
        mean = t.stats.mean.reshape(-1, cout)
        square = t.stats.mean_square.reshape(-1, cout)
        m, e2 = mean.mean(axis=0), square.mean(axis=0)
        stats = Stats(m, np.sqrt(np.maximum(e2 - m**2, 0.0)), t.stats.lo, t.stats.hi)
        options = _options(fb.DepthToSpaceOptionsT, blockSize=block)
        return self._emit("DEPTH_TO_SPACE", self._name(layer), [x.index],
                          (1, h * block, w * block, cout), stats, options, tied=True)

    def reshape(self, x: TensorRef, shape: Sequence[int]) -> TensorRef:
        """RESHAPE (one dimension may be -1); the output keeps the input's int8 parameters."""
        layer = "reshape"
        t = self._get(layer, x)
        new = shapes.reshaped(layer, t.shape, shape)
        shape_t = self._int32(self._name("reshape_shape"), new)
        return self._emit("RESHAPE", self._name(layer), [x.index, shape_t], new, t.stats,
                          tied=True)

    def _unary(self, layer: str, opcode: str, x: TensorRef, activation: str | None,
               options: object | None = None, fixed: tuple[float, int] | None = None,
               stats: Stats | None = None, tied: bool = False) -> TensorRef:
        """Record an element-wise operator: ``activation`` of the input, or given ``stats``."""
        t = self._get(layer, x)
        if stats is None:
            stats = estimate.activate(t.stats.mean, t.stats.std, activation, t.stats.lo, t.stats.hi)
        return self._emit(opcode, self._name(layer), [x.index], t.shape, stats, options,
                          tied=tied, fixed=fixed)

    def softmax(self, x: TensorRef) -> TensorRef:
        """SOFTMAX over the last axis (int8 output: scale 1/256, zero point -128)."""
        t = self._get("softmax", x)
        n = t.shape[-1]
        stats = Stats(np.full(n, 1.0 / n), np.full(n, 1.0 / n), 0.0, 1.0)
        options = _options(fb.SoftmaxOptionsT, beta=1.0)
        return self._unary("softmax", "SOFTMAX", x, None, options, quant.PROBABILITY_PARAMS, stats)

    def logistic(self, x: TensorRef) -> TensorRef:
        """LOGISTIC (sigmoid; int8 output: scale 1/256, zero point -128)."""
        return self._unary("logistic", "LOGISTIC", x, "logistic",
                           fixed=quant.PROBABILITY_PARAMS)

    def hard_swish(self, x: TensorRef) -> TensorRef:
        """HARD_SWISH: ``x * relu6(x + 3) / 6``."""
        return self._unary("hard_swish", "HARD_SWISH", x, "hard_swish")

    def relu(self, x: TensorRef) -> TensorRef:
        """RELU as its own operator (prefer ``activation=`` on the layer before)."""
        return self._unary("relu", "RELU", x, "relu")

    def relu6(self, x: TensorRef) -> TensorRef:
        """RELU6 as its own operator; int8 output keeps the input's parameters.

        TFLite Micro's int8 RELU6 clamps without rescaling, so the converter ties the two.
        """
        return self._unary("relu6", "RELU6", x, "relu6", tied=True)

    # -- real-world structure: constants, normalisation, attention, recurrence ------------

    def _const_operand(self, layer: str, x: Tensor,
                       values: object) -> tuple[int, Stats, tuple[int, ...]]:
        """A constant operand for ``x`` and the shape of the result.

        ``values``: one (a rank-0 constant, as the converter writes scalars), one per channel
        (last axis), one per element (a position embedding), or -- where ``x`` has a single
        channel -- one per output channel, broadcast both ways (a layer norm's per-row scale
        times its per-channel gain). int8 constants get one symmetric scale; the statistics
        describe the values the runtime really uses (after rounding).
        """
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        channels, elements = x.shape[-1], math.prod(x.shape)
        if not np.isfinite(v).all() or v.size < 1 or (
                v.size not in (1, channels, elements) and channels != 1):
            raise shapes.fail(layer, f"constant must be 1, {channels} (one per channel) or "
                                     f"{elements} finite values, got {v.size}")
        out = x.shape
        if v.size == 1:
            shape: tuple[int, ...] = ()
        elif v.size == elements and elements != channels:
            shape = x.shape
        else:
            shape = (1,) * (len(x.shape) - 1) + (v.size,)
            out = (*x.shape[:-1], v.size)
        name = self._name(f"{layer}_constant")
        if self._int8:
            scale = quant.snap(max(float(np.abs(v).max()), 1e-6) / 127.0).reshape(1)
            q = np.clip(np.rint(v / float(scale[0])), -127, 127).astype(np.int8)
            index = self._const(name, q.reshape(shape), scale)
            v = q.astype(np.float64) * float(scale[0])
        else:
            index = self._const(name, v.astype(np.float32).reshape(shape))
        if shape == x.shape and elements != channels:  # per element: spread per channel
            per = v.reshape(-1, channels)
            stats = Stats(per.mean(axis=0), per.std(axis=0), float(v.min()), float(v.max()))
        else:
            stats = Stats(v, np.zeros_like(v), float(v.min()), float(v.max()))
        return index, stats, out

    def _const_binary(self, layer: str, opcode: str, x: TensorRef, values: object,
                      activation: str | None, const_first: bool = False) -> TensorRef:
        t = self._get(layer, x)
        act = self._activation(layer, activation)
        index, const, shape = self._const_operand(layer, t, values)
        n = shape[-1]
        combine, cls = _BINARY[opcode]
        operands = [t.stats.as_channels(n), const.as_channels(n)]
        inputs = [x.index, index]
        if const_first:
            operands, inputs = operands[::-1], inputs[::-1]
        return self._emit(opcode, self._name(layer), inputs, shape, combine(*operands, act),
                          _options(cls, fusedActivationFunction=_FUSED[act]))

    def add_const(self, x: TensorRef, values: object, activation: str | None = None) -> TensorRef:
        """ADD of a constant: one value, or one per channel (a shift the converter kept)."""
        return self._const_binary("add_const", "ADD", x, values, activation)

    def sub_const(self, x: TensorRef, values: object, activation: str | None = None,
                  reverse: bool = False) -> TensorRef:
        """SUB of a constant: one value, or one per channel (e.g. a mean, at the input).

        ``reverse`` computes ``values - x`` (a GRU's ``1 - z``).
        """
        return self._const_binary("sub_const", "SUB", x, values, activation, reverse)

    def mul_const(self, x: TensorRef, values: object, activation: str | None = None) -> TensorRef:
        """MUL by a constant: one value, or one per channel (a scale the converter kept)."""
        return self._const_binary("mul_const", "MUL", x, values, activation)

    def batch_norm(self, x: TensorRef, activation: str | None = None) -> TensorRef:
        """A batch normalisation the converter cannot fold: MUL, then ADD, per channel.

        The converter folds a BatchNormalization into the convolution before it; one after an
        activation, a concatenation or the input (pre-activation blocks, DenseNet, Keras
        CNNs written Conv-ReLU-BN) stays as two element-wise operators. The constants are what
        training leaves: each channel scaled to a random gain over its spread and shifted to
        a small random mean.
        """
        t = self._get("batch_norm", x)
        stats = t.stats.as_channels(t.shape[-1])
        n = stats.channels
        gains = np.exp(quant.GAIN_SPREAD * self._rng.standard_normal(n))
        beta = quant.BIAS_STD * self._rng.standard_normal(n)
        scale = gains / np.sqrt(np.maximum(stats.std**2, quant.MIN_MEAN_SQUARE))
        return self.add_const(self.mul_const(x, scale), beta - stats.mean * scale, activation)

    def hard_sigmoid(self, x: TensorRef) -> TensorRef:
        """Keras' hard sigmoid ``relu6(x + 3) / 6`` where nothing can absorb the +3: ADD
        with a fused RELU6, then MUL. After a convolution the converter folds the +3 into
        its bias and fuses the RELU6: use ``conv2d(..., activation="relu6", shift=3.0)``
        and ``mul_const(y, 1 / 6)`` (MobileNetV3's squeeze-excite gate)."""
        return self.mul_const(self.add_const(x, 3.0, activation="relu6"), 1.0 / 6.0)

    def sub(self, a: TensorRef, c: TensorRef, activation: str | None = None) -> TensorRef:
        """SUB ``a - c`` of equal shapes (or ``c`` broadcast along size-1 dimensions)."""
        return self._binary("sub", "SUB", a, c, activation)

    def squared_difference(self, a: TensorRef, c: TensorRef) -> TensorRef:
        """SQUARED_DIFFERENCE ``(a - c)^2`` (a layer normalisation's variance, decomposed)."""
        layer = "squared_difference"
        ta, tc = self._get(layer, a), self._get(layer, c)
        shape = shapes.broadcast(layer, ta.shape, tc.shape)
        stats = estimate.squared_difference(ta.stats.as_channels(shape[-1]),
                                            tc.stats.as_channels(shape[-1]))
        return self._emit("SQUARED_DIFFERENCE", self._name(layer), [a.index, c.index], shape,
                          stats, _options(fb.SquaredDifferenceOptionsT))

    def rsqrt(self, x: TensorRef, floor: float = 1e-3) -> TensorRef:
        """RSQRT of a positive tensor (a variance plus ``floor``, its epsilon)."""
        t = self._get("rsqrt", x)
        return self._unary("rsqrt", "RSQRT", x, None,
                           stats=estimate.reciprocal_sqrt(t.stats, floor))

    def negate(self, x: TensorRef) -> TensorRef:
        """NEG; in an int8 model the float island the converter leaves for it.

        TensorFlow's int8 quantiser has no int8 NEG: it writes DEQUANTIZE, a float32 NEG and
        QUANTIZE, which Vela leaves to the CPU (a layer norm's negated mean does this).
        """
        layer = "negate"
        t = self._get(layer, x)
        neg = Stats(-t.stats.mean, t.stats.std, -t.stats.hi, -t.stats.lo)
        name = self._name(layer)
        if not self._int8:
            return self._emit("NEG", name, [x.index], t.shape, neg)
        real = self._net.add(Tensor(f"{name}/dequantize", t.shape, "float32", stats=t.stats))
        negated = self._net.add(Tensor(f"{name}/neg", t.shape, "float32", stats=neg))
        out = self._net.add(Tensor(name, t.shape, "int8", stats=neg))
        self._net.ops += [Op("DEQUANTIZE", (x.index,), (real,)),
                          Op("NEG", (real,), (negated,)), Op("QUANTIZE", (negated,), (out,))]
        return TensorRef(out, t.shape, self._id)

    def layer_norm(self, x: TensorRef, epsilon: float = 1e-3) -> TensorRef:
        """Layer normalisation over the last axis as TensorFlow's converter decomposes it.

        ``mean = MEAN(x)``, ``inv = RSQRT(MEAN(SQUARED_DIFFERENCE(x, mean)) + eps)``,
        ``scale = inv * gamma``, then ``x * scale + (-mean * scale + beta)``; the negated
        mean is a float island in int8 models (see :meth:`negate`). TFLite has no fused
        int8 layer-norm operator.
        """
        t = self._get("layer_norm", x)
        last, n = len(t.shape) - 1, t.shape[-1]
        mu = self.mean(x, axes=(last,), keepdims=True)
        neg_mu = self.negate(mu)
        var = self.mean(self.squared_difference(x, mu), axes=(last,), keepdims=True)
        inv = self.rsqrt(self.add_const(var, epsilon), floor=epsilon)
        gamma = np.exp(quant.GAIN_SPREAD * self._rng.standard_normal(n))
        beta = quant.BIAS_STD * self._rng.standard_normal(n)
        scale = self.mul_const(inv, gamma)
        shift = self.add_const(self.mul(neg_mu, scale), beta)
        return self.add(self.mul(x, scale), shift)

    def tanh(self, x: TensorRef) -> TensorRef:
        """TANH (int8 output: scale 1/128, zero point 0, as TFLite mandates)."""
        return self._unary("tanh", "TANH", x, "tanh", fixed=_TANH_PARAMS)

    def gelu(self, x: TensorRef, approximate: bool = False) -> TensorRef:
        """GELU, the transformer MLP's activation (the erf form unless ``approximate``)."""
        options = _options(fb.GeluOptionsT, approximate=bool(approximate))
        return self._unary("gelu", "GELU", x, "gelu", options)

    def gelu_decomposed(self, x: TensorRef) -> TensorRef:
        """GELU's tanh form spelled out, as converters without a GELU operator write it:
        ``0.5 x (1 + tanh(0.79788456 (x + 0.044715 x^3)))`` in MUL, ADD and TANH."""
        cube = self.mul(self.mul(x, x), x)
        inner = self.mul_const(self.add(x, self.mul_const(cube, 0.044715)), 0.7978845608)
        return self.mul_const(self.mul(x, self.add_const(self.tanh(inner), 1.0)), 0.5)

    def transpose(self, x: TensorRef, perm: Sequence[int]) -> TensorRef:
        """TRANSPOSE by ``perm``; the output keeps the input's int8 parameters."""
        layer = "transpose"
        t = self._get(layer, x)
        rank = len(t.shape)
        if not shapes.is_sequence(perm) or len(perm) != rank:
            raise shapes.fail(layer, f"perm must list {rank} axes, got {perm!r}")
        p = [shapes.axis(layer, a, rank) for a in perm]
        if sorted(p) != list(range(rank)):
            raise shapes.fail(layer, f"perm {tuple(perm)} is not a permutation of {rank} axes")
        shape = tuple(t.shape[i] for i in p)
        stats = t.stats
        if p[-1] != rank - 1:  # channels mixed into other axes: one pooled distribution
            m, sd = stats.pooled()
            stats = Stats(np.full(shape[-1], m), np.full(shape[-1], sd), stats.lo, stats.hi)
        perm_t = self._int32(self._name("transpose_perm"), p)
        return self._emit("TRANSPOSE", self._name(layer), [x.index, perm_t], shape, stats,
                          _options(fb.TransposeOptionsT), tied=True)

    def split(self, x: TensorRef, parts: int, axis: int = -1) -> tuple[TensorRef, ...]:
        """SPLIT into ``parts`` equal pieces along ``axis``; all share the input's parameters."""
        layer = "split"
        t = self._get(layer, x)
        ax = shapes.axis(layer, axis, len(t.shape))
        n = shapes.positive(layer, "parts", parts)
        if n < 2 or t.shape[ax] % n:
            raise shapes.fail(layer, f"cannot split axis {ax} of {t.shape} into {n} equal parts")
        shape = tuple(d // n if i == ax else d for i, d in enumerate(t.shape))
        axis_t = self._const(self._name("split_axis"), np.asarray(ax, dtype=np.int32))
        name = self._name(layer)
        last = ax == len(t.shape) - 1
        refs = []
        for i in range(n):
            stats = t.stats
            if last and t.stats.channels == t.shape[ax]:
                part = slice(i * shape[ax], (i + 1) * shape[ax])
                stats = Stats(stats.mean[part], stats.std[part], stats.lo, stats.hi)
            index = self._net.add(Tensor(f"{name}:{i}", shape, self._act_dtype,
                                         stats=stats.as_channels(shape[-1])))
            refs.append(TensorRef(index, shape, self._id))
        self._net.ops.append(Op("SPLIT", (axis_t, x.index), tuple(r.index for r in refs),
                                _options(fb.SplitOptionsT, numSplits=n), tied=True))
        return tuple(refs)

    def grouped_conv2d(self, x: TensorRef, filters: int, groups: int,
                       kernel: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1,
                       padding: str = "same", activation: str | None = None,
                       native: bool = True) -> TensorRef:
        """A grouped convolution (ResNeXt, ShuffleNet, RegNet), as converters write it.

        ``native``: one CONV_2D whose filters see ``channels / groups`` inputs (version 6,
        what TensorFlow's converter writes since grouped kernels exist); otherwise SPLIT, one
        CONV_2D per group and CONCATENATION (older converters, and exporters that lower it).
        """
        layer = "grouped_conv2d"
        t = self._get(layer, x)
        shapes.rank(layer, t.shape, 4)
        g = shapes.positive(layer, "groups", groups)
        filters = shapes.positive(layer, "filters", filters)
        if g < 2 or t.shape[3] % g or filters % g:
            raise shapes.fail(layer, f"groups {g} must be >= 2 and divide both the input "
                                     f"channels ({t.shape[3]}) and filters ({filters})")
        if not native:
            parts = self.split(x, g, axis=3)
            return self.concat([self.conv2d(p, filters // g, kernel, stride, padding,
                                            activation=activation) for p in parts])
        w = self._window(layer, x, kernel, stride, 1, padding)
        act = self._activation(layer, activation)
        seen = w.seen.as_channels(t.shape[3])
        per_group = t.shape[3] // g
        group_stats = Stats(seen.mean.reshape(g, per_group).mean(axis=0),
                            np.sqrt(np.square(seen.std).reshape(g, per_group).mean(axis=0)),
                            seen.lo, seen.hi)
        weights = quant.dense_like(self._rng, filters, w.kernel, group_stats)
        options = _options(fb.Conv2DOptionsT, fusedActivationFunction=_FUSED[act], **w.options)
        return self._linear(self._name(layer), "CONV_2D", x.index, weights, act, True, options,
                            (1, *w.out, filters))

    def unpack(self, x: TensorRef, axis: int = 0) -> tuple[TensorRef, ...]:
        """UNPACK along ``axis``: one tensor per index, that axis removed (time steps)."""
        layer = "unpack"
        t = self._get(layer, x)
        ax = shapes.axis(layer, axis, len(t.shape))
        if len(t.shape) < 2:
            raise shapes.fail(layer, f"needs a rank >= 2 input, got shape {t.shape}")
        shape = tuple(d for i, d in enumerate(t.shape) if i != ax)
        stats = t.stats if ax != len(t.shape) - 1 else t.stats.as_channels(shape[-1])
        name = self._name(layer)
        outs = tuple(self._net.add(Tensor(f"{name}:{i}", shape, self._act_dtype, stats=stats))
                     for i in range(t.shape[ax]))
        self._net.ops.append(Op("UNPACK", (x.index,), outs,
                                _options(fb.UnpackOptionsT, num=t.shape[ax], axis=ax), tied=True))
        return tuple(TensorRef(i, shape, self._id) for i in outs)

    def strided_slice(self, x: TensorRef, begin: Sequence[int],
                      end: Sequence[int]) -> TensorRef:
        """STRIDED_SLICE ``x[begin:end]`` (unit strides); keeps the input's int8 parameters."""
        layer = "strided_slice"
        t = self._get(layer, x)
        rank = len(t.shape)
        if not (shapes.is_sequence(begin) and shapes.is_sequence(end)
                and len(begin) == len(end) == rank
                and all(0 <= a < e <= n for a, e, n in zip(begin, end, t.shape, strict=True))):
            raise shapes.fail(layer, f"begin {tuple(begin)} and end {tuple(end)} must give a "
                                     f"non-empty slice of {t.shape}")
        shape = tuple(int(e - a) for a, e in zip(begin, end, strict=True))
        stats = t.stats
        if shape[-1] != t.shape[-1] and stats.channels == t.shape[-1]:
            part = slice(begin[-1], end[-1])
            stats = Stats(stats.mean[part], stats.std[part], stats.lo, stats.hi)
        consts = [self._int32(self._name(f"strided_slice_{kind}"), v)
                  for kind, v in (("begin", begin), ("end", end), ("strides", [1] * rank))]
        return self._emit("STRIDED_SLICE", self._name(layer), [x.index, *consts], shape, stats,
                          _options(fb.StridedSliceOptionsT), tied=True)

    def batch_matmul(self, a: TensorRef, c: TensorRef, adj_x: bool = False,
                     adj_y: bool = False) -> TensorRef:
        """BATCH_MATMUL of two activations with equal batch dimensions (attention)."""
        layer = "batch_matmul"
        ta, tc = self._get(layer, a), self._get(layer, c)
        if len(ta.shape) < 2 or len(ta.shape) != len(tc.shape) or ta.shape[:-2] != tc.shape[:-2]:
            raise shapes.fail(layer, f"shapes {ta.shape} and {tc.shape} need equal ranks (>= 2) "
                                     "and equal batch dimensions")
        m, k = ta.shape[-1:-3:-1] if adj_x else ta.shape[-2:]
        k2, n = tc.shape[-1:-3:-1] if adj_y else tc.shape[-2:]
        if k != k2:
            raise shapes.fail(layer, f"inner dimensions differ: {k} and {k2} "
                                     f"(shapes {ta.shape}, {tc.shape})")
        columns = tc.stats
        if adj_y:  # the columns are rows of c: only their pooled distribution is known
            mc, sc = columns.pooled()
            columns = Stats(np.array([mc]), np.array([sc]), columns.lo, columns.hi)
        stats = estimate.matmul(ta.stats, columns, k, n)
        options = _options(fb.BatchMatMulOptionsT, adjX=bool(adj_x), adjY=bool(adj_y),
                           asymmetricQuantizeInputs=False)
        return self._emit("BATCH_MATMUL", self._name(layer), [a.index, c.index],
                          (*ta.shape[:-2], m, n), stats, options)

    # -- output --------------------------------------------------------------------------

    def build(self, outputs: Sequence[TensorRef]) -> bytes:
        """The ``.tflite`` bytes of everything ``outputs`` depend on.

        Layers no output depends on are left out, as the converter prunes them.
        """
        if isinstance(outputs, TensorRef) or not isinstance(outputs, Sequence) or not outputs:
            raise UsageError("build: outputs must be a non-empty list of TensorRef")
        for ref in outputs:
            self._get("build", ref)
        indices = [ref.index for ref in outputs]
        if len(set(indices)) != len(indices):
            raise UsageError("build: the same tensor is listed twice in outputs")
        if any(i in self._net.inputs for i in indices):
            raise UsageError("build: a model input cannot be an output; add a layer after it")
        return serialize(self._net.resolve(indices, self._int8), self._int8)
