"""The graph IR, the TFLite reader and per-operator cost analysis.

Kept light on purpose: importing this package pulls in NumPy and the flatbuffers schema,
never TensorFlow or PyTorch.
"""

from perfsage.graph.analysis import LayerCost, ModelCost, analyze
from perfsage.graph.ir import Edge, Model, Operator, Quantization, Subgraph, Tensor
from perfsage.graph.reader import read_model

__all__ = [
    "Edge", "LayerCost", "Model", "ModelCost", "Operator", "Quantization", "Subgraph",
    "Tensor", "analyze", "read_model",
]
