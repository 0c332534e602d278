"""The graph IR: a TFLite model as plain Python data, independent of any ML framework.

A :class:`Model` holds :class:`Subgraph` objects (the main graph first, then bodies of
WHILE/IF/CALL_ONCE and friends); each subgraph owns its :class:`Tensor` and
:class:`Operator` lists. Operators refer to tensors by index, exactly as in the flatbuffer,
and an edge producer -> consumer exists wherever one operator writes a tensor another reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

#: Storage size of one element, in bits, per dtype name. Sub-byte types pack densely.
DTYPE_BITS: dict[str, int] = {
    "float32": 32, "float16": 16, "bfloat16": 16, "float64": 64,
    "int2": 2, "int4": 4, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
    "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64,
    "bool": 8, "complex64": 64, "complex128": 128,
    "string": 8, "resource": 0, "variant": 0,
}

#: Operators that call other subgraphs, and the option fields naming them.
SUBGRAPH_OPTION_SUFFIX = "_subgraph_index"


@lru_cache(maxsize=1 << 16)
def element_count(shape: tuple[int, ...]) -> int:
    """Elements of a shape, dynamic (-1) dimensions taken as 1.

    Memoised: analysis and features ask for the same few shapes over and over.
    """
    return math.prod(max(d, 1) for d in shape)


#: Integer tensor types whose stored bytes :meth:`Tensor.values` views in their dtype.
_INTEGER_DTYPES = {"int32": np.int32, "int64": np.int64, "int8": np.int8, "uint8": np.uint8,
                   "int16": np.int16}


@dataclass(frozen=True, slots=True)
class Quantization:
    """Affine quantisation: ``real = scale * (q - zero_point)``, per tensor or per axis."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None  # quantised dimension when there is one scale per channel

    @property
    def per_channel(self) -> bool:
        """True when the tensor has one scale per slice along ``axis``."""
        return len(self.scale) > 1


@dataclass(slots=True, eq=False)
class Tensor:
    """One tensor of a subgraph: an activation, a constant (weights) or a variable."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization | None = None
    # The signature keeps -1 where a dimension (usually the batch) is dynamic.
    shape_signature: tuple[int, ...] | None = None
    buffer: int = 0
    data: np.ndarray | None = None  # constant bytes (uint8 view into the file), else None
    is_variable: bool = False
    is_sparse: bool = False

    @property
    def is_constant(self) -> bool:
        """True for tensors whose values are stored in the model (weights, biases, shapes)."""
        return self.data is not None

    def values(self) -> np.ndarray | None:
        """A constant's values in its own integer dtype; None for activations and other types.

        ``data`` holds the stored bytes; index tensors (paddings, shapes, axes) and integer
        weights are read through this view.
        """
        dtype = _INTEGER_DTYPES.get(self.dtype)
        if self.data is None or dtype is None:
            return None
        return self.data.view(dtype)

    @property
    def has_dynamic_shape(self) -> bool:
        """True when a dimension is unknown until run time (-1 in the signature or shape)."""
        dims = self.shape_signature if self.shape_signature is not None else self.shape
        return any(d < 0 for d in dims) or any(d < 0 for d in self.shape)

    @property
    def num_elements(self) -> int:
        """Element count with dynamic dimensions taken as 1 (batch-1 inference)."""
        return element_count(tuple(self.shape))  # tuple(): a list shape works too

    @property
    def bits(self) -> int:
        """Bits per element of this tensor's dtype (0 for handle types)."""
        return dtype_bits(self.dtype)

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies in memory at batch 1 (sub-byte types packed)."""
        return self.nbytes_of(self.num_elements, self.bits)

    def nbytes_of(self, elements: int, bits: int) -> int:
        """:attr:`nbytes` given this tensor's element count and bits, when already known."""
        if self.is_sparse and self.data is not None:
            return int(self.data.size)
        return (elements * bits + 7) // 8


@dataclass(slots=True, eq=False)
class Operator:
    """One operator: its type, options and the tensors it reads and writes."""

    index: int
    opcode: str  # builtin name from the schema ("CONV_2D"), or "CUSTOM"
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str | None = None
    version: int = 1
    intermediates: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """Display name: the builtin name, or the custom code for custom operators."""
        return self.custom_code if self.opcode == "CUSTOM" and self.custom_code else self.opcode

    @property
    def fused_activation(self) -> str | None:
        """Activation fused into the operator (e.g. "RELU6"), or None."""
        act = self.options.get("fused_activation_function")
        return None if act in (None, "NONE") else act

    @property
    def called_subgraphs(self) -> tuple[int, ...]:
        """Indices of subgraphs this operator runs (WHILE, IF, CALL_ONCE, ...)."""
        return tuple(
            v for k, v in self.options.items()
            if k.endswith(SUBGRAPH_OPTION_SUFFIX) and isinstance(v, int)
        )


@dataclass(frozen=True, slots=True)
class Edge:
    """Data flowing from one operator to another through one tensor."""

    producer: int
    consumer: int
    tensor: int


def dtype_bits(dtype: str) -> int:
    """Bits per element of a dtype name (8 for a name not in DTYPE_BITS)."""
    return DTYPE_BITS.get(dtype, 8)


@dataclass(frozen=True, slots=True)
class TensorSizes:
    """Every tensor's size facts in one subgraph, as lists indexed like its tensors.

    Cost analysis and features look these up several times per operator; reading each
    property once per tensor, here, is what keeps them cheap.
    """

    elements: list[int]  # Tensor.num_elements
    bits: list[int]  # Tensor.bits
    nbytes: list[int]  # Tensor.nbytes
    constant: list[bool]  # Tensor.is_constant

    @classmethod
    def of(cls, tensors: list[Tensor]) -> TensorSizes:
        """The sizes of ``tensors`` (a subgraph's list)."""
        elements = [t.num_elements for t in tensors]
        bits = [t.bits for t in tensors]
        return cls(elements, bits,
                   [t.nbytes_of(e, b) for t, e, b in zip(tensors, elements, bits, strict=True)],
                   [t.data is not None for t in tensors])


@dataclass(eq=False)
class Subgraph:
    """A list of tensors and the operators that run over them, in execution order."""

    index: int
    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @cached_property
    def sizes(self) -> TensorSizes:
        """Every tensor's size facts; the reader fills this in as it reads the tensors."""
        return TensorSizes.of(self.tensors)

    @cached_property
    def producers(self) -> dict[int, int]:
        """Tensor index -> index of the operator that writes it."""
        return {t: op.index for op in self.operators for t in op.outputs if t >= 0}

    @cached_property
    def consumers(self) -> dict[int, list[int]]:
        """Tensor index -> indices of the operators that read it, in execution order."""
        readers: dict[int, list[int]] = {}
        for op in self.operators:
            for t in dict.fromkeys(op.inputs):
                if t >= 0:
                    readers.setdefault(t, []).append(op.index)
        return readers

    @cached_property
    def edge_tuples(self) -> list[tuple[int, int, int]]:
        """The edges as plain (producer, consumer, tensor) tuples, cheaper to build."""
        producers = self.producers
        return [
            (producers[t], op.index, t)
            for op in self.operators
            for t in dict.fromkeys(op.inputs)
            if t in producers
        ]

    @cached_property
    def edges(self) -> list[Edge]:
        """Every producer -> consumer connection, one per (operator pair, tensor)."""
        return [Edge(*e) for e in self.edge_tuples]

    def input_tensors(self, op: Operator) -> list[Tensor]:
        """The tensors an operator reads (omitted optional inputs skipped)."""
        return [self.tensors[t] for t in op.inputs if t >= 0]

    def output_tensors(self, op: Operator) -> list[Tensor]:
        """The tensors an operator writes."""
        return [self.tensors[t] for t in op.outputs if t >= 0]


@dataclass(eq=False)
class Model:
    """A whole TFLite model: its subgraphs (main graph first) and where it came from."""

    subgraphs: list[Subgraph]
    source: str = "<bytes>"
    version: int = 3
    description: str = ""
    size_bytes: int = 0
    signatures: tuple[str, ...] = ()

    @property
    def main(self) -> Subgraph:
        """The subgraph the interpreter runs: the first one."""
        return self.subgraphs[0]

    @property
    def inputs(self) -> list[Tensor]:
        """Input tensors of the main subgraph."""
        return [self.main.tensors[t] for t in self.main.inputs]

    @property
    def outputs(self) -> list[Tensor]:
        """Output tensors of the main subgraph."""
        return [self.main.tensors[t] for t in self.main.outputs]
