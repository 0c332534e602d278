"""Compression transforms and hardware-constrained search over a space.

:mod:`perfsage.search.compress` prunes and clusters a TFLite model's int8 weights in place
(same graph, same quantisation), so the compressed model's cost on an NPU that decompresses
weights in hardware (Ethos-U) can be predicted and measured.
"""

from __future__ import annotations

from perfsage.search.compress import (
    CompressionPlan,
    LayerCompression,
    WeightLayer,
    apply_plan,
    compress,
    weight_layers,
)

__all__ = ["CompressionPlan", "LayerCompression", "WeightLayer", "apply_plan", "compress",
           "weight_layers"]
