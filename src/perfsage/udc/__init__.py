"""UDC's side of PerfSAGE: compression transforms and hardware-constrained search.

Named after UDC (Fedorov et al., NeurIPS 2022), which searches architecture, bit-width and
sparsity together; not ``search``, so that ``perfsage.search(...)``, the function a search
loop calls, is not shadowed by a package of the same name.

:mod:`perfsage.udc.compress` prunes and clusters a TFLite model's int8 weights in place
(same graph, same quantisation), so the compressed model's cost on an NPU that decompresses
weights in hardware (Ethos-U) can be predicted and measured.
"""

from __future__ import annotations

from perfsage.udc.compress import (
    CompressionPlan,
    LayerCompression,
    WeightLayer,
    apply_plan,
    compress,
    weight_layers,
)

__all__ = ["CompressionPlan", "LayerCompression", "WeightLayer", "apply_plan", "compress",
           "weight_layers"]
