"""The SRAM Vela's int8 SOFTMAX lowering needs on Ethos-U55 and U65: computed, not learnt.

Vela lowers an int8 SOFTMAX to some thirty element-wise passes (``ethosu/vela/softmax.py``)
whose intermediates are int32 tensors of the input's shape, their last axis padded to the
16-channel bricks of NHCWB16, several alive at once. For a dense-prediction head that
working set, not any feature map, is the model's SRAM peak: a U-Net's 96x96x2 SOFTMAX
needs 1,836 KiB, 1.3x the whole TFLite Micro arena, and Vela's summary reports exactly
that. The network, which never saw such a head, put it at 1,089 KiB.

What Vela 5.2 needs, per row of the last axis (``rows`` = product of the other axes),
with ``R = 4 * roundup(C, 16)`` bytes for a padded int32 row of ``C`` classes, measured on
standalone SOFTMAX graphs (1 to 4,096 rows, C = 1, 2, 3, 4, 6, 8, 12, 16, 17, 21, 32, 48,
64, 91, 1000; ``sram_kib`` of Vela's summary) and the same for both families:

===========  =====================
C            bytes per row
===========  =====================
1            5 R
2 - 7        3 R + 4 (C + 1)
8 - 16       4 R + 4
17 - 32      2 R + 68
33 and up    2 R + 8
===========  =====================

Inside a network the other live feature maps come on top, so this is a floor of the
model's SRAM (on the real models of benchmarks/keras_zoo.py it matches Vela's figure for
U-Nets and SSD heads and is below it elsewhere). Ethos-U85's compiler lowers SOFTMAX its
own way and spills to DRAM beyond its SRAM; it gets no floor here.
"""

from __future__ import annotations

from collections.abc import Sequence

from perfsage.graph import Model

#: Families whose Vela lowering the table above describes.
FAMILIES = ("ethos-u55", "ethos-u65")
_BRICK = 16
_INT32 = 4


def row_bytes(classes: int) -> int:
    """SRAM bytes per row of a SOFTMAX over ``classes`` values (the table of the module)."""
    padded = _INT32 * -(-max(classes, 1) // _BRICK) * _BRICK
    if classes <= 1:
        return 5 * padded
    if classes <= 7:
        return 3 * padded + _INT32 * (classes + 1)
    if classes <= 16:
        return 4 * padded + _INT32
    if classes <= 32:
        return 2 * padded + 68
    return 2 * padded + 2 * _INT32


def softmax_sram_bytes(model: Model, on_npu: Sequence[bool], family: str) -> int:
    """The largest SRAM working set of an int8 SOFTMAX Vela runs on the NPU; 0 if none.

    ``on_npu``: per operator of the main graph, whether Vela runs it on the NPU (its own
    checks, ``targets.vela_support``). 0 for families outside :data:`FAMILIES`.
    """
    if family not in FAMILIES:
        return 0
    sub = model.main
    found = 0
    for op in sub.operators:
        if op.opcode != "SOFTMAX" or not on_npu[op.index] or not op.inputs \
                or op.inputs[0] < 0:
            continue
        tensor = sub.tensors[op.inputs[0]]
        if tensor.dtype != "int8" or not tensor.shape:
            continue
        rows = 1
        for d in tensor.shape[:-1]:
            rows *= max(int(d), 1)
        found = max(found, rows * row_bytes(int(tensor.shape[-1])))
    return found
