"""What each TFLite Micro reference kernel allocates in the arena, per operator.

Three kinds of allocation, in the order TFLM makes them for the whole graph:

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

from perfsage.graph.ir import Operator, Subgraph


@dataclass(frozen=True, slots=True)
class KernelArena:
    """One operator's allocations; see the module docstring for the four kinds."""

    options: tuple[tuple[int, int], ...] = ()
    init: tuple[int, ...] = ()
    prepare: tuple[int, ...] = ()
    scratch: tuple[int, ...] = ()


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


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
    """MEAN: an int32 accumulator per output (integer types), the index and axis arrays."""
    x, axis = (sg.tensors[i] for i in op.inputs[:2])
    scratch = (4 * len(x.shape), 4 * _elements(axis.shape))
    if x.dtype in ("int8", "int16", "uint8"):
        scratch = (4 * _elements(sg.tensors[op.outputs[0]].shape), *scratch)
    return KernelArena(options=((1, 1),), init=(44,), scratch=scratch)


def _fixed(options: tuple[tuple[int, int], ...] = (), init: tuple[int, ...] = (),
           prepare: tuple[int, ...] = ()) -> Callable[[Operator, Subgraph], KernelArena]:
    """A kernel whose allocations do not depend on shapes or types."""
    arena = KernelArena(options=options, init=init, prepare=prepare)
    return lambda op, sg: arena


#: Builtin operator name -> its allocations. An operator missing here has no rule yet.
KERNELS: dict[str, Callable[[Operator, Subgraph], KernelArena]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fully_connected,
    "MEAN": _mean,
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
    "SOFTMAX": _fixed(((4, 4),), (80,)),
    "RELU": _fixed((), (28,)),
    "RELU6": _fixed((), (8,)),
    "HARD_SWISH": _fixed((), (20,)),
    "LOGISTIC": _fixed((), (16,)),
}
