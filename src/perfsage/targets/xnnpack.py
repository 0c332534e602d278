"""Which operators LiteRT's XNNPACK delegate leaves to LiteRT's own kernels in int8 models.

On a CPU, LiteRT hands every operator XNNPACK supports to XNNPACK's kernels and runs the
rest with its built-in kernels, one call each. Those are far slower per byte: fitted over
the 52 real Keras models of ``benchmarks/keras_zoo.py`` on two hosts (AVX-512, AVX2), an
undelegated operator's activation bytes cost 20-30 times a delegated one's. A cost model of a
LiteRT CPU therefore prices the two apart (``predictors.perfsage_gnn.adapt``'s ``runtime``
move), and needs to know which is which without running the model.

``UNDELEGATED_INT8`` holds the operator types the delegate of ai-edge-litert 2.3 left to
LiteRT in those models (of 8,034 operators, 1,227 were left; of the listed types every one
but 3 of 36 BATCH_MATMULs), found by :func:`delegated_operators`;
``tests/targets/test_xnnpack.py`` checks it against LiteRT on graphs the builder makes.
A few types are left out only with some parameters, and are not listed: ADD of a scalar
constant (layer normalisation's epsilon), RESHAPE to a shape computed at run time,
CONCATENATION of six inputs or of int32 shapes, a 1x1 MAX_POOL_2D. Operator types PerfSAGE
does not know (``SHAPE``, ``REDUCE_PROD``: shape arithmetic) are not delegated either.
"""

from __future__ import annotations

#: Operator types XNNPACK never takes from an int8 model (ai-edge-litert 2.3).
UNDELEGATED_INT8 = frozenset({
    "AVERAGE_POOL_2D", "BATCH_MATMUL", "GATHER", "GELU", "HARD_SWISH", "PACK", "PRELU",
    "RELU", "RSQRT", "SOFTMAX", "SQUARED_DIFFERENCE", "UNPACK",
})


def delegated_operators(interpreter) -> set[int]:
    """Indices of the operators a delegate took, from an interpreter after ``allocate_tensors``.

    LiteRT lists the model's operators and, after them, one ``DELEGATE`` node per partition
    it handed over; the partition's own operators are not named. They are what lies between
    the node's inputs and its outputs: walking back from each output through the operators
    that produce it, stopping at the node's inputs, finds exactly them.
    """
    ops = interpreter._get_ops_details()
    producer = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = op
    taken: set[int] = set()
    for node in (op for op in ops if op["op_name"] == "DELEGATE"):
        stop = {int(t) for t in node["inputs"]}
        pending, seen = [int(t) for t in node["outputs"]], set()
        while pending:
            t = pending.pop()
            if t in seen or t in stop or t not in producer:
                continue
            seen.add(t)
            op = producer[t]
            taken.add(op["index"])
            pending.extend(int(x) for x in op["inputs"] if x >= 0)
    return taken
