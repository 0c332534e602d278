"""The SRAM Vela's int8 SOFTMAX lowering needs on Ethos-U: computed, not learnt.

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

Ethos-U85's compiler needs the same up to 32 classes where the working set fits its SRAM
(C = 1 to 21 measured); from 33 classes up its rows vary around ``2 R`` (2 R - 16 for 91
classes, 2 R + 4 for 40 and 64), and the floor takes ``8 C``, the two int32 rows without
their padding. Where the working set does not fit (``arena_cache_size``), it spills to
DRAM and needs less than the table, which then says nothing.

Inside a network the other live feature maps come on top, so this is a floor of the
model's SRAM (on the real models of benchmarks/keras_zoo.py it matches Vela's figure for
U-Nets and SSD heads and is below it elsewhere). It reads the model's features
(``predictors.features``), so prediction and the interval calibration
(benchmarks/calibrate_intervals.py) apply the same floor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perfsage.predictors.features import NODE_FEATURES, OP_TYPES, GraphFeatures

#: Families whose Vela lowering the table above describes.
FAMILIES = ("ethos-u55", "ethos-u65", "ethos-u85")
_BRICK = 16
_INT32 = 4
_SOFTMAX = OP_TYPES.index("SOFTMAX")
_ELEMENTS, _CLASSES, _BITS = (NODE_FEATURES.index(n) for n in ("in_elements", "in_c", "in_bits"))


def row_bytes(classes: int, family: str = "ethos-u55") -> int:
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
    if family == "ethos-u85":
        return 2 * _INT32 * classes
    return 2 * padded + 2 * _INT32


def softmax_sram_bytes(graph: GraphFeatures, on_npu: Sequence[bool] | np.ndarray, family: str,
                       sram_bytes: float = float("inf")) -> int:
    """The largest SRAM working set of an int8 SOFTMAX Vela runs on the NPU; 0 if none.

    ``graph``: the model's features (``predictors.features.featurize``; a node's input
    elements and last axis give its rows and classes). ``on_npu``: per operator, whether
    Vela runs it on the NPU (its own checks, ``targets.vela_support``). ``sram_bytes``: the
    SRAM Vela may use for feature maps (``Hardware.arena_cache_bytes``); a working set
    beyond it is spilled and says nothing. 0 for families outside :data:`FAMILIES`.
    """
    if family not in FAMILIES:
        return 0
    units = np.rint(np.expm1(graph.nodes[:, [_ELEMENTS, _CLASSES]].astype(np.float64)))
    bits = np.rint(graph.nodes[:, _BITS] * 32)  # the features hold bits / 32
    found = 0
    for i in np.flatnonzero((graph.op_types == _SOFTMAX) & np.asarray(on_npu, dtype=bool)
                            & (bits == 8)):
        elements, classes = int(units[i, 0]), max(int(units[i, 1]), 1)
        need = elements // classes * row_bytes(classes, family)
        if need <= sram_bytes:
            found = max(found, need)
    return found
