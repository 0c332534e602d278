"""Operator options checked against tensor shapes, as the TFLite kernels require them.

A flatbuffer can declare a convolution with stride 0, or a stride, padding or filter that
contradicts the shapes written next to it. The interpreter refuses such a model when it
prepares the operator (LiteRT ``kernels/conv.cc``, ``depthwise_conv.cc``, ``pooling.cc``,
``transpose_conv.cc``, ``fully_connected.cc``); cost analysis and the network would instead
compute figures from numbers that cannot all be true. Each rule returns the contradiction in
words, or None, and the reader fails naming the operator.

Output sizes follow TensorFlow's padding rules (``tf.nn.convolution``): SAME gives
``ceil(in / stride)``, VALID ``ceil((in - effective_filter + 1) / stride)`` with
``effective_filter = (filter - 1) * dilation + 1``. Dimensions that are dynamic (-1) are
not compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from perfsage.graph.ir import Operator, Subgraph

Shape = tuple[int, ...]
_STRIDES = ("stride_h", "stride_w")
_DILATIONS = ("dilation_h_factor", "dilation_w_factor")
_Rule = Callable[[Operator, list[Shape], Subgraph], "str | None"]


def check_operators(sub: Subgraph, fail: Callable[[str], NoReturn]) -> None:
    """Call ``fail`` with the first contradiction between an operator and its shapes."""
    shapes = [t.shape for t in sub.tensors]
    rules = _RULES
    for op in sub.operators:
        rule = rules.get(op.opcode)
        if rule is not None:
            problem = rule(op, shapes, sub)
            if problem is not None:
                fail(f"subgraph {sub.index} operator {op.index} ({op.opcode}): {problem}")


def output_size(size: int, filter_size: int, stride: int, dilation: int,
                padding: str) -> int:
    """Output length of a windowed operator along one axis (TensorFlow's rule)."""
    if padding == "SAME":
        return -(-size // stride)
    effective = (filter_size - 1) * dilation + 1
    return max(-(-(size - effective + 1) // stride), 0)


def _positive(options: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` whose value is below 1 (absent counts as the schema's 0)."""
    for name in names:
        value = options.get(name, 0)
        if not (isinstance(value, int) and value >= 1):
            return f"{name} {value} (must be 1 or more)"
    return None


def _operands(op: Operator, shapes: list[Shape], inputs: tuple[int, ...],
              ranks: tuple[int, ...], positive: tuple[str, ...]) -> list[Shape] | str:
    """The shapes of inputs ``inputs`` and of output 0, after the options ``positive``.

    Returns a problem when one of those options is below 1, or an operand is missing or has
    the wrong rank or a zero or negative dimension; dynamic dimensions (-1) of a rank-right
    operand are kept as -1.
    """
    problem = _positive(op.options, positive)
    if problem is not None:
        return problem
    chosen: list[Shape] = []
    for slot, rank in zip((*inputs, None), ranks, strict=True):
        indices = op.outputs if slot is None else op.inputs
        position = 0 if slot is None else slot
        what = "output" if slot is None else f"input {slot}"
        if position >= len(indices) or indices[position] < 0:
            return f"{what} is missing"
        shape = shapes[indices[position]]
        if len(shape) != rank:
            return f"{what} has shape {list(shape)}, expected {rank} dimensions"
        if any(d == 0 or d < -1 for d in shape):
            return f"{what} has shape {list(shape)}, with a dimension below 1"
        chosen.append(shape)
    return chosen


def _spatial(x: Shape, y: Shape, kernel: tuple[int, int], strides: tuple[int, int],
             dilations: tuple[int, int], padding: Any, forward: bool = True) -> str | None:
    """Output height and width against input, filter, stride, dilation and padding.

    ``forward`` False checks a transposed convolution, whose input is the output size a
    convolution would give from its output.
    """
    if padding not in ("SAME", "VALID"):
        return f"padding {padding!r} is neither SAME nor VALID"
    src, dst = (x, y) if forward else (y, x)
    for axis, name in ((1, "height"), (2, "width")):
        i = axis - 1
        size, declared = src[axis], dst[axis]
        if size < 0 or declared < 0:
            continue
        expected = output_size(size, kernel[i], strides[i], dilations[i], padding)
        if expected != declared:
            s, d = ("output", "input") if forward else ("input", "output")
            return (f"{s} {name} {declared} contradicts {d} {name} {size}, filter "
                    f"{kernel[i]}, stride {strides[i]}, dilation {dilations[i]} and "
                    f"{padding} padding (which give {expected})")
    return None


def _same(a: int, b: int) -> bool:
    """Two dimensions agree (a dynamic one agrees with anything)."""
    return a == b or a < 0 or b < 0


def _batch(x: Shape, y: Shape) -> str | None:
    return None if _same(x[0], y[0]) else f"input batch {x[0]} but output batch {y[0]}"


def _conv_channels(x: Shape, w: Shape, y: Shape) -> str | None:
    """A convolution's filter [out, height, width, in / groups] against its tensors."""
    if x[3] > 0 and x[3] % w[3]:  # groups = input channels / filter input channels
        return f"input has {x[3]} channels, not a multiple of the filter's {w[3]} input channels"
    if not _same(y[3], w[0]):
        return f"output has {y[3]} channels but the filter makes {w[0]}"
    return None


def _depthwise_channels(x: Shape, w: Shape, y: Shape) -> str | None:
    """A depthwise filter [1, height, width, in x multiplier] against its tensors."""
    if w[0] != 1:
        return f"filter has shape {list(w)}; a depthwise filter is [1, height, width, channels]"
    if x[3] > 0 and w[3] > 0 and w[3] % x[3]:
        return f"filter has {w[3]} channels, not a multiple of the input's {x[3]} channels"
    if not _same(y[3], w[3]):
        return f"output has {y[3]} channels but the filter makes {w[3]}"
    return None


def _convolution(op: Operator, shapes: list[Shape],
                 channels: Callable[[Shape, Shape, Shape], str | None]) -> str | None:
    """Options, operands, ``channels``, batch and output size of a 2-D convolution."""
    o = op.options
    operands = _operands(op, shapes, (0, 1), (4, 4, 4), _STRIDES + _DILATIONS)
    if isinstance(operands, str):
        return operands
    x, w, y = operands
    return channels(x, w, y) or _batch(x, y) or _spatial(
        x, y, (w[1], w[2]), (o["stride_h"], o["stride_w"]),
        (o["dilation_h_factor"], o["dilation_w_factor"]), o.get("padding"))


def _conv_2d(op: Operator, shapes: list[Shape], sub: Subgraph) -> str | None:
    return _convolution(op, shapes, _conv_channels)


def _depthwise_conv_2d(op: Operator, shapes: list[Shape], sub: Subgraph) -> str | None:
    return _convolution(op, shapes, _depthwise_channels)


def _pool_2d(op: Operator, shapes: list[Shape], sub: Subgraph) -> str | None:
    o = op.options
    operands = _operands(op, shapes, (0,), (4, 4), (*_STRIDES, "filter_height", "filter_width"))
    if isinstance(operands, str):
        return operands
    x, y = operands
    if not _same(x[3], y[3]):
        return f"input has {x[3]} channels but output has {y[3]}"
    return _batch(x, y) or _spatial(x, y, (o["filter_height"], o["filter_width"]),
                                    (o["stride_h"], o["stride_w"]), (1, 1), o.get("padding"))


def _transpose_conv(op: Operator, shapes: list[Shape], sub: Subgraph) -> str | None:
    o = op.options
    # Inputs: the output shape (a 1-D int32 tensor), the filter, the input, [the bias].
    operands = _operands(op, shapes, (1, 2), (4, 4, 4), _STRIDES)
    if isinstance(operands, str):
        return operands
    w, x, y = operands
    if not _same(x[3], w[3]):
        return f"input has {x[3]} channels but the filter takes {w[3]}"
    if not _same(y[3], w[0]):
        return f"output has {y[3]} channels but the filter makes {w[0]}"
    problem = _batch(x, y)
    if problem is not None:
        return problem
    declared = sub.tensors[op.inputs[0]]
    if declared.data is not None and declared.dtype == "int32" and declared.data.size == 16:
        wanted = tuple(declared.data.view("<i4").tolist())
        if wanted != y and all(d > 0 for d in y):
            return f"output has shape {list(y)} but its output-shape input says {list(wanted)}"
    return _spatial(x, y, (w[1], w[2]), (o["stride_h"], o["stride_w"]), (1, 1),
                    o.get("padding"), forward=False)


def _fully_connected(op: Operator, shapes: list[Shape], sub: Subgraph) -> str | None:
    if len(op.inputs) < 2 or min(op.inputs[:2]) < 0 or not op.outputs:
        return "needs an input, weights and an output"
    x, w, y = shapes[op.inputs[0]], shapes[op.inputs[1]], shapes[op.outputs[0]]
    if len(w) != 2 or min(w) < 1:
        return f"weights have shape {list(w)}, expected [units, inputs]"
    if any(d < 0 for d in (*x, *y)):
        return None  # dynamic: the interpreter decides at run time
    units, depth = w
    if not x or min(x) < 1 or not y or min(y) < 1:
        return f"input {list(x)} or output {list(y)} has a dimension below 1"
    if y[-1] != units:
        return f"output has shape {list(y)} but the weights make {units} units"
    if op.options.get("keep_num_dims"):
        if x[-1] != depth or y[:-1] != x[:-1]:
            return (f"input {list(x)} and output {list(y)} do not fit weights {list(w)} "
                    "with keep_num_dims")
        return None
    # An input smaller than one row of weights is left alone: LiteRT runs converter output
    # with such a FULLY_CONNECTED (ConvNeXt's layer scale, [1, 1] against [384, 96]), and a
    # file LiteRT runs is valid. A larger one must split into whole rows.
    elements, out_elements = _count(x), _count(y)
    if elements >= depth and (elements % depth or out_elements != elements // depth * units):
        return (f"input {list(x)} ({elements} values) does not fit weights {list(w)} and "
                f"output {list(y)}")
    return None


def _count(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


_RULES: dict[str, _Rule] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "AVERAGE_POOL_2D": _pool_2d,
    "MAX_POOL_2D": _pool_2d,
    "L2_POOL_2D": _pool_2d,
    "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected,
}
