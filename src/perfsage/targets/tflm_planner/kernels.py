"""What each TFLite Micro reference kernel allocates in the arena, per operator.

Four kinds of allocation, in the order TFLM makes them for the whole graph:

- ``options``: the builtin-options struct the flatbuffer parser allocates in the tail
  (``(bytes, alignment)``, e.g. ``TfLiteConvParams`` is 28 bytes aligned to 4), one pass
  over every operator before any kernel runs;
- ``init`` and ``prepare``: the persistent buffers the kernel's Init (its OpData) and
  Prepare (per-channel multipliers and shifts, look-up tables) ask for, each 16-byte
  aligned in the tail;
- ``scratch``: buffers Prepare requests in the head, live only while the operator runs,
  planned with the activations.

The byte counts are those of the ``tflite-micro`` Python package's host build (x86-64,
reference kernels), calibrated against its recording allocator one operator at a time
(``benchmarks/tflm_arena_exact.py`` checks them over whole graphs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perfsage.errors import MeasurementError
from perfsage.graph.ir import Operator, Subgraph, Tensor

#: The target whose figure this is, for errors.
TARGET = "cortex-m-tflm"

#: Bytes per element as TFLM's ``TfLiteTypeSizeOf`` gives them.
TYPE_BYTES = {
    "float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int4": 1, "int8": 1,
    "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8,
    "bool": 1, "complex64": 8, "complex128": 16,
}


@dataclass(frozen=True, slots=True)
class KernelArena:
    """One operator's allocations; see the module docstring for the four kinds."""

    options: tuple[tuple[int, int], ...] = ()
    init: tuple[int, ...] = ()
    prepare: tuple[int, ...] = ()
    scratch: tuple[int, ...] = ()


def _elements(shape: tuple[int, ...]) -> int:
    """Elements of a shape as TFLM counts them: a 0 dimension makes 0, a scalar 1."""
    n = 1
    for d in shape:
        n *= d
    return n


def tensor_bytes(tensor: Tensor) -> int:
    """Bytes of a tensor's buffer as ``TfLiteEvalTensorByteLength`` gives them."""
    return _elements(tensor.shape) * TYPE_BYTES.get(tensor.dtype, 1)


def _out_channels(op: Operator, sg: Subgraph) -> int:
    shape = sg.tensors[op.outputs[0]].shape
    return shape[-1] if shape else 1


def _conv(op: Operator, sg: Subgraph) -> KernelArena:
    """CONV_2D and DEPTHWISE_CONV_2D: OpData, then a multiplier and a shift per channel."""
    c = 4 * _out_channels(op, sg)
    return KernelArena(options=((28, 4),), init=(80,), prepare=(c, c))


def _fully_connected(op: Operator, sg: Subgraph) -> KernelArena:
    """FULLY_CONNECTED: OpData; quantised, a multiplier and a shift per output unit."""
    if sg.tensors[op.inputs[0]].dtype == "float32":
        return KernelArena(options=((32, 8),), init=(72,))
    c = 4 * _out_channels(op, sg)
    return KernelArena(options=((32, 8),), init=(72,), prepare=(c, c))


def _mean(op: Operator, sg: Subgraph) -> KernelArena:
    """MEAN and SUM: an int32 accumulator per output (integer types), index and axis arrays."""
    x, axis = (sg.tensors[i] for i in op.inputs[:2])
    scratch = (4 * len(x.shape), 4 * _elements(axis.shape))
    if x.dtype in ("int8", "int16", "uint8"):
        scratch = (4 * _elements(sg.tensors[op.outputs[0]].shape), *scratch)
    return KernelArena(options=((1, 1),), init=(44,), scratch=scratch)


def _reduce_extreme(op: Operator, sg: Subgraph) -> KernelArena:
    """REDUCE_MAX and REDUCE_MIN: the index and axis arrays only."""
    x, axis = (sg.tensors[i] for i in op.inputs[:2])
    return KernelArena(options=((1, 1),), init=(44,),
                       scratch=(4 * len(x.shape), 4 * _elements(axis.shape)))


def _transpose_conv(op: Operator, sg: Subgraph) -> KernelArena:
    """TRANSPOSE_CONV: per-channel arrays, and an int32 (int16: int64) accumulator per output.

    Inputs are (output shape, filter, input[, bias]); int16 with an int16 bias also asks for
    the bias widened to int64.
    """
    x = sg.tensors[op.inputs[2]]
    c = 4 * sg.tensors[op.inputs[1]].shape[0]
    out = _elements(sg.tensors[op.outputs[0]].shape)
    scratch: tuple[int, ...] = ()
    if x.dtype == "int8":
        scratch = (4 * out,)
    elif x.dtype == "int16":
        scratch = (8 * out,)
        if len(op.inputs) > 3 and op.inputs[3] >= 0 and sg.tensors[op.inputs[3]].dtype == "int16":
            scratch += (8 * _elements(sg.tensors[op.inputs[3]].shape),)
    return KernelArena(options=((20, 4),), init=(88,), prepare=(c, c), scratch=scratch)


def _batch_matmul(op: Operator, sg: Subgraph) -> KernelArena:
    """BATCH_MATMUL: quantisation data, persistent transposed copies, the output's dims.

    The right operand is transposed into the tail unless ``adj_y`` (and the left one when
    ``adj_x``): a TfLiteEvalTensor, its dims and all its data, persistent.
    """
    lhs, rhs = (sg.tensors[i] for i in op.inputs[:2])
    if not (2 <= len(lhs.shape) <= 5 and 2 <= len(rhs.shape) <= 5):
        raise MeasurementError(TARGET, "TFLite Micro's BATCH_MATMUL takes 2 to 5 dimensions")
    prepare: list[int] = []
    if lhs.dtype in ("int8", "int16"):
        prepare.append(28)
    for tensor, transposed in ((lhs, op.options.get("adj_x", False)),
                               (rhs, not op.options.get("adj_y", False))):
        if transposed:
            prepare += [24, 4 + 4 * len(tensor.shape), tensor_bytes(tensor)]
    prepare.append(4 + 4 * max(len(lhs.shape), len(rhs.shape)))
    return KernelArena(options=((3, 1),), init=(32,), prepare=tuple(prepare))


def _transpose(op: Operator, sg: Subgraph) -> KernelArena:
    """TRANSPOSE: nothing allocated; TFLM's kernel takes 1 to 5 dimensions."""
    rank = len(sg.tensors[op.inputs[0]].shape)
    if not 1 <= rank <= 5:
        raise MeasurementError(TARGET, f"TFLite Micro's TRANSPOSE takes 1 to 5 dimensions, "
                                       f"not {rank}")
    return KernelArena()


def _softmax(op: Operator, sg: Subgraph) -> KernelArena:
    """SOFTMAX: OpData; int16 builds two 513-entry int16 look-up tables (exp, 1/(1+x))."""
    lut = (1026, 1026) if sg.tensors[op.inputs[0]].dtype == "int16" else ()
    return KernelArena(options=((4, 4),), init=(80,), prepare=lut)


def _mirror_pad(op: Operator, sg: Subgraph) -> KernelArena:
    """MIRROR_PAD: OpData, and the element counts per dimension of input and output."""
    rank = 4 * len(sg.tensors[op.inputs[0]].shape)
    return KernelArena(options=((4, 4),), init=(20,), scratch=(rank, rank))


def _float_exp(op: Operator, sg: Subgraph) -> KernelArena:
    """EXP: nothing allocated; TFLM's EXP kernel takes float32 only."""
    dtype = sg.tensors[op.inputs[0]].dtype
    if dtype != "float32":
        raise MeasurementError(TARGET, f"TFLite Micro's EXP takes float32, not {dtype}")
    return KernelArena()


def _fixed(options: tuple[tuple[int, int], ...] = (), init: tuple[int, ...] = (),
           prepare: tuple[int, ...] = ()) -> Callable[[Operator, Subgraph], KernelArena]:
    """A kernel whose allocations do not depend on shapes or types."""
    arena = KernelArena(options=options, init=init, prepare=prepare)
    return lambda op, sg: arena


#: Builtin operators the ``tflite-micro`` Python package registers no kernel for: TFLM fails
#: to allocate a model that has one ("Didn't find op for builtin opcode").
NO_TFLM_KERNEL = frozenset({"GELU"})

#: Builtin operator name -> its allocations. An operator missing here has no rule yet.
KERNELS: dict[str, Callable[[Operator, Subgraph], KernelArena]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fully_connected,
    "MEAN": _mean,
    "SUM": _mean,
    "REDUCE_MAX": _reduce_extreme,
    "REDUCE_MIN": _reduce_extreme,
    "ADD": _fixed(((8, 4),), (60,)),
    "MUL": _fixed(((4, 4),), (36,)),
    "AVERAGE_POOL_2D": _fixed(((40, 4),), (32,)),
    "MAX_POOL_2D": _fixed(((40, 4),), (32,)),
    "CONCATENATION": _fixed(((8, 4),), (80,)),
    "PAD": _fixed((), (56,)),
    "RESHAPE": _fixed(((36, 4),)),
    "RESIZE_NEAREST_NEIGHBOR": _fixed(((2, 1),)),
    "RESIZE_BILINEAR": _fixed(((2, 1),)),
    "DEPTH_TO_SPACE": _fixed(((4, 4),), prepare=(20,)),
    "SOFTMAX": _softmax,
    "TRANSPOSE_CONV": _transpose_conv,
    "BATCH_MATMUL": _batch_matmul,
    "SUB": _fixed(((8, 4),), (52,)),
    "SQUARED_DIFFERENCE": _fixed((), (112,)),
    "RSQRT": _fixed((), (28,)),
    "TANH": _fixed((), (16,)),
    "TRANSPOSE": _transpose,
    "SPLIT": _fixed(((4, 4),)),
    "SPLIT_V": _fixed(((4, 4),)),
    "ARG_MAX": _fixed(((4, 4),)),
    "ARG_MIN": _fixed(((4, 4),)),
    "CAST": _fixed(((8, 4),)),
    "SHAPE": _fixed(((4, 4),)),
    "GATHER": _fixed(((8, 4),), (20,)),
    "L2_NORMALIZATION": _fixed(((4, 4),), (4,)),
    "LEAKY_RELU": _fixed(((4, 4),), (24,)),
    "PRELU": _fixed((), (28,)),
    "MAXIMUM": _fixed(),
    "MINIMUM": _fixed(),
    "PACK": _fixed(((8, 4),)),
    "UNPACK": _fixed(((8, 4),)),
    "SLICE": _fixed(),
    "STRIDED_SLICE": _fixed(((24, 4),), (84,)),
    "SPACE_TO_DEPTH": _fixed(((4, 4),), prepare=(20,)),
    "QUANTIZE": _fixed((), (32,)),
    "ABS": _fixed((), (28,)),
    "NEG": _fixed(),
    "SQRT": _fixed(),
    "SQUARE": _fixed(),
    "DIV": _fixed(((4, 4),), (28,)),
    "ELU": _fixed((), (256,)),
    "MIRROR_PAD": _mirror_pad,
    "EXP": _float_exp,
    "DEQUANTIZE": _fixed((), (32,)),
    "RELU": _fixed((), (28,)),
    "RELU6": _fixed((), (8,)),
    "HARD_SWISH": _fixed((), (20,)),
    "LOGISTIC": _fixed((), (16,)),
}
