"""TFLite Micro's tensor arena for a model, replayed allocation by allocation.

The arena is a deterministic function of the graph. Its head holds the activations and
kernels' scratch buffers as the greedy planner lays them out; its tail holds everything
persistent, allocated downwards from the arena's end in a fixed order (``MicroInterpreter::
AllocateTensors``): the allocator objects, one ``TfLiteEvalTensor`` per tensor, one
``NodeAndRegistration`` per operator, each operator's parsed options, the kernels' Init and
Prepare buffers, the scratch-buffer handles, variable tensors, and finally the
``TfLiteTensor`` structs (with their quantisation) of the model's inputs and outputs.
Each tail allocation aligns the tail pointer down to its own alignment, so the padding is
replayed exactly rather than estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsage.errors import MeasurementError, UsageError
from perfsage.graph.ir import Model, Subgraph
from perfsage.targets.tflm_planner.greedy import planned_peak_bytes
from perfsage.targets.tflm_planner.kernels import (
    KERNELS,
    NO_TFLM_KERNEL,
    TARGET,
    KernelArena,
    tensor_bytes,
)

ALIGNMENT = 16  # MicroArenaBufferAlignment(): every buffer and persistent kernel buffer

# sizeof() of TFLM's structs in the x86-64 host build, with their alignof().
_FIXED_TAIL = 472  # the recording allocators, the greedy planner, the builtin-data allocator
_SUBGRAPH_ALLOCATIONS = 16
_EVAL_TENSOR = 24
_NODE_AND_REGISTRATION = 64
_SCRATCH_HANDLE = 8
_TFLITE_TENSOR = 64
_AFFINE_QUANTIZATION = 24
_POINTER = 8


@dataclass(frozen=True, slots=True)
class ArenaPlan:
    """The arena TFLM would use for a model: head (planned buffers) and tail (persistent)."""

    head_bytes: int
    tail_bytes: int

    @property
    def total_bytes(self) -> int:
        """Bytes of arena used: what ``arena_used_bytes()`` and ``PrintAllocations`` report."""
        return self.head_bytes + self.tail_bytes


class _Tail:
    """The tail's size as TFLM grows it: each allocation aligned down from the arena's end."""

    __slots__ = ("used",)

    def __init__(self, used: int) -> None:
        self.used = used

    def take(self, size: int, alignment: int) -> None:
        used = self.used + size
        self.used = -(-used // alignment) * alignment


def _kernels(sg: Subgraph) -> list[KernelArena]:
    """Every operator's allocations; an operator with no rule fails."""
    arenas = []
    for op in sg.operators:
        rule = KERNELS.get(op.opcode)
        if op.opcode in NO_TFLM_KERNEL:
            raise MeasurementError(TARGET, f"TFLite Micro has no kernel for {op.name}")
        if rule is None:
            raise MeasurementError(TARGET, f"no TFLite Micro arena rule for operator {op.name}")
        arenas.append(rule(op, sg))
    return arenas


def _lifetimes(sg: Subgraph, kernels: list[KernelArena]
               ) -> tuple[list[int], list[int], list[int]]:
    """(sizes, first, last) of every buffer the planner gets, in the order TFLM adds them.

    Lifetimes follow ``AllocationInfoBuilder::MarkAllocationLifetimes``: one step per
    operator; the graph's inputs and outputs are created at its start and its outputs live
    to its end; a scratch buffer lives for its operator's step. A tensor nothing writes or
    reads keeps TFLM's "unset" lifetime (-1, -1) and is planned all the same.
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in (*sg.inputs, *sg.outputs):
        first[t] = last[t] = 0
    scratch: list[tuple[int, int]] = []  # (bytes, step)
    step = 0
    for op, arena in zip(sg.operators, kernels, strict=True):
        step += 1
        for t in op.outputs:
            first[t] = last[t] = step
        for t in op.inputs:
            if t >= 0:
                last[t] = step
        for size in arena.scratch:
            scratch.append((size, step))
    for t in sg.outputs:
        last[t] = step
    sizes, firsts, lasts = [], [], []
    for t, tensor in enumerate(sg.tensors):
        if tensor.data is not None or tensor.is_variable:
            continue
        nbytes = tensor_bytes(tensor)
        if nbytes == 0:
            continue
        sizes.append(_aligned(nbytes))
        firsts.append(first.get(t, -1))
        lasts.append(last.get(t, -1))
    for size, at in scratch:
        sizes.append(_aligned(size))
        firsts.append(at)
        lasts.append(at)
    return sizes, firsts, lasts


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGNMENT) * ALIGNMENT


#: Activation types that always carry quantisation in a model TFLM can run.
_QUANTIZED = ("int8", "uint8", "int16")


def _io_tensors(tail: _Tail, sg: Subgraph, indices: tuple[int, ...]) -> None:
    """The interpreter's input or output pointer array and a TfLiteTensor per entry.

    Raises:
        UsageError: a quantised input or output has no quantisation in the IR, as when the
            model was read with ``details=False``.
    """
    tail.take(_POINTER * len(indices), ALIGNMENT)
    for t in indices:
        tail.take(_TFLITE_TENSOR, 8)
        tensor = sg.tensors[t]
        q = tensor.quantization
        if q is None and tensor.dtype in _QUANTIZED:
            raise UsageError(f"tensor {t} ({tensor.dtype}) has no quantisation in the IR; "
                             "read the model with details=True to compute its arena")
        if q is not None and q.scale:
            tail.take(_AFFINE_QUANTIZATION, 8)
            tail.take(4 + 4 * len(q.scale), 4)


def plan_arena(model: Model) -> ArenaPlan:
    """The head and tail TFLite Micro allocates for ``model``; see :func:`arena_bytes`.

    Raises:
        MeasurementError: an operator has no rule, or the model has several subgraphs
            (control flow, whose lifetimes span subgraphs, is not replayed).
    """
    if len(model.subgraphs) > 1:
        raise MeasurementError(TARGET, f"{len(model.subgraphs)} subgraphs: TFLite Micro's "
                                       "arena is only computed for single-graph models")
    sg = model.main
    kernels = _kernels(sg)
    tail = _Tail(_FIXED_TAIL)
    tail.take(_SUBGRAPH_ALLOCATIONS, 8)
    tail.take(_EVAL_TENSOR * len(sg.tensors), 8)
    tail.take(_NODE_AND_REGISTRATION * len(sg.operators), 8)
    for arena in kernels:
        for size, alignment in arena.options:
            tail.take(size, alignment)
    # All Init buffers, then all Prepare buffers: which comes first sets the padding.
    for arena in kernels:
        for size in arena.init:
            tail.take(size, ALIGNMENT)
    for arena in kernels:
        for size in arena.prepare:
            tail.take(size, ALIGNMENT)
    n_scratch = sum(len(arena.scratch) for arena in kernels)
    if n_scratch:
        tail.take(_SCRATCH_HANDLE * n_scratch, 8)
    for tensor in sg.tensors:
        if tensor.is_variable:
            tail.take(tensor_bytes(tensor), ALIGNMENT)
    head = planned_peak_bytes(*_lifetimes(sg, kernels))
    _io_tensors(tail, sg, sg.inputs)
    _io_tensors(tail, sg, sg.outputs)
    return ArenaPlan(head_bytes=head, tail_bytes=tail.used)
