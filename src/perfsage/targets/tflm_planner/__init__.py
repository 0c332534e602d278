"""TFLite Micro's tensor arena, computed exactly, without running TFLite Micro.

:func:`arena_bytes` replays what ``MicroInterpreter::AllocateTensors`` does with a model
(see :mod:`.arena`): the greedy memory planner over activations and scratch buffers (the
head, :mod:`.greedy`) and every persistent allocation in the tail with its alignment
padding (:mod:`.kernels` lists what each reference kernel allocates). Plain Python over the
graph IR: no TensorFlow, no TFLite Micro.

What it replicates: the ``tflite-micro`` Python package, version 0.dev20261023182759, as
``perfsage.targets.tflm`` measures with it (host x86-64 build, reference kernels,
``RecordingMicroAllocator``). A firmware build for a 32-bit Cortex-M has smaller structs
(4-byte pointers) and, with CMSIS-NN kernels, other scratch buffers: its arena differs by
a few hundred bytes of tail and any CMSIS-NN scratch.
"""

from __future__ import annotations

from perfsage.graph.ir import Model
from perfsage.graph.reader import read_model
from perfsage.targets.tflm_planner.arena import ArenaPlan, plan_arena

TFLM_VERSION = "0.dev20261023182759"

__all__ = ["TFLM_VERSION", "ArenaPlan", "arena_bytes", "plan_arena"]


def arena_bytes(model: Model | bytes) -> int:
    """Bytes of tensor arena TFLite Micro uses for ``model``, exactly as it reports them.

    The figure TFLM's recording allocator prints as ``Arena allocation total`` (head plus
    tail, the same as ``arena_used_bytes()``), i.e. ``cortex-m-tflm``'s ``arena_kib`` times
    1024. Replicates ``tflite-micro`` 0.dev20261023182759 (:data:`TFLM_VERSION`).

    Args:
        model: the graph IR (read with details, the default: the quantisation of the
            model's inputs and outputs counts) or the ``.tflite`` bytes.

    Raises:
        MeasurementError: the model has an operator without a rule here (among them those
            TFLM itself has no kernel for, such as GELU) or more than one subgraph.
        ModelFileError: ``model`` is bytes that are not a valid TFLite model.
        UsageError: ``model`` is an IR read with ``details=False`` (no quantisation).
    """
    if not isinstance(model, Model):
        model = read_model(model)
    return plan_arena(model).total_bytes
