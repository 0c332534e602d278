"""Per-operator cost analysis: MACs, parameters and activation bytes, plus model totals.

Counting conventions (what ``macs`` means for each kind of operator):

* Convolutions, fully connected and matrix multiplies: multiply-accumulates, e.g. a
  CONV_2D costs ``output elements x kernel_h x kernel_w x input channels per group``.
  TRANSPOSE_CONV costs ``input elements x kernel_h x kernel_w x output channels``.
* Pooling: one operation per output element per window position.
* Reductions (MEAN, SUM, REDUCE_*, ARG_*): one operation per input element.
* Element-wise arithmetic, activations and (de)quantisation: one per output element;
  SOFTMAX and LOG_SOFTMAX three (max, exp-and-sum, normalise); RESIZE_BILINEAR four
  (a weighted sum of four neighbours).
* Data movement (RESHAPE, CONCATENATION, PAD, DEPTH_TO_SPACE, RESIZE_NEAREST_NEIGHBOR,
  GATHER, ...) and anything else: 0 MACs, but its bytes still count.

Operators that run other subgraphs (WHILE, IF, CALL_ONCE) add the cost of those subgraphs:
WHILE counts one trip of its condition and body (the trip count is unknown statically),
IF the dearer branch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from perfsage.graph.ir import Model, Operator, Subgraph, Tensor, TensorSizes

_POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
_REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
               "REDUCE_ALL", "ARG_MAX", "ARG_MIN"}
_ELEMENTWISE = {
    "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW",
    "FLOOR_DIV", "FLOOR_MOD", "ATAN2", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
    "LEAKY_RELU", "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "GELU", "ELU", "EXP", "LOG",
    "SQRT", "RSQRT", "SQUARE", "ABS", "NEG", "SIN", "COS", "FLOOR", "CEIL", "ROUND", "SIGN",
    "QUANTIZE", "DEQUANTIZE", "CAST", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL",
    "EQUAL", "NOT_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "SELECT", "SELECT_V2",
    "BITWISE_XOR", "RIGHT_SHIFT", "ADD_N", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION",
}
#: Operations per output element for composite element-wise functions.
_PER_ELEMENT = {"SOFTMAX": 3, "LOG_SOFTMAX": 3, "RESIZE_BILINEAR": 4}


@dataclass(slots=True)
class LayerCost:
    """What one operator costs: compute, stored parameters and activation traffic."""

    index: int
    op: str
    activation: str | None  # fused activation function, if any
    output_shapes: tuple[tuple[int, ...], ...]
    macs: int
    params: int  # elements of the constant tensors the operator reads
    param_bytes: int
    input_bytes: int  # activations read (constants excluded)
    output_bytes: int


@dataclass(slots=True)
class ModelCost:
    """Per-layer costs of the main subgraph and totals for the whole model."""

    source: str
    layers: list[LayerCost]
    macs: int
    params: int  # each constant tensor counted once, however many operators read it
    param_bytes: int
    activation_bytes: int  # every activation tensor of the main subgraph, summed
    peak_activation_bytes: int  # most bytes live at once in execution order
    model_bytes: int
    subgraphs: int = 1
    ops_by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready view of the costs."""
        out = {k: getattr(self, k) for k in self.__slots__ if k != "layers"}
        out["layers"] = [
            {k: getattr(layer, k) for k in LayerCost.__slots__} for layer in self.layers
        ]
        return out


def _dims(t: Tensor | None) -> tuple[int, ...]:
    return _clamped(tuple(t.shape)) if t is not None else ()  # tuple(): a list shape works too


@lru_cache(maxsize=1 << 14)
def _clamped(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape with dynamic (-1) and zero dimensions taken as 1. Memoised: shapes repeat."""
    return tuple(max(d, 1) for d in shape)


def _prod(dims: tuple[int, ...]) -> int:
    return math.prod(dims) if dims else 0


#: Convolutions whose MACs are output elements times the product of these filter
#: dimensions (clamped as by _dims): (start, stop) of the slice.
_FILTER_SPANS: dict[str, tuple[int, int | None]] = {
    "CONV_2D": (1, None),  # filter [out_c, kh, kw, in_c / groups]
    "DEPTHWISE_CONV_2D": (1, 3),  # filter [1, kh, kw, out_c]
    "CONV_3D": (0, 4),  # filter [kd, kh, kw, in_c, out_c]
}


@lru_cache(maxsize=1 << 14)
def _span_product(shape: tuple[int, ...], start: int, stop: int | None) -> int:
    """``_prod(_clamped(shape)[start:stop])``, memoised: filter shapes repeat across layers."""
    return _prod(_clamped(shape)[start:stop])


def _input(sub: Subgraph, op: Operator, i: int) -> Tensor | None:
    """The operator's i-th input tensor; None when omitted or absent."""
    t = op.inputs[i] if i < len(op.inputs) else -1
    return sub.tensors[t] if t >= 0 else None


def operator_macs(sub: Subgraph, op: Operator, elements: list[int] | None = None) -> int:
    """MACs of one operator by the conventions in this module's docstring.

    ``elements`` gives every tensor's element count when the caller has them already.
    """
    elements = elements or sub.sizes.elements
    out_elems = 0
    for t in op.outputs:
        if t >= 0:
            out_elems += elements[t]
    return macs_given_outputs(sub, op, out_elems)


def macs_given_outputs(sub: Subgraph, op: Operator, out_elems: int) -> int:
    """:func:`operator_macs` when the caller has summed the output elements already.

    Cost analysis and the predictors' features both walk each operator's outputs anyway;
    this spares them a second walk.
    """
    name = op.opcode
    if name in _ELEMENTWISE:
        if name == "ADD_N":
            return out_elems * max(len(op.inputs) - 1, 1)
        return out_elems
    span = _FILTER_SPANS.get(name)
    if span is not None:  # CONV_2D, DEPTHWISE_CONV_2D, CONV_3D
        f = _input(sub, op, 1)
        return out_elems * (_span_product(tuple(f.shape), *span) if f is not None else 0)

    def inp(i: int) -> Tensor | None:
        return _input(sub, op, i)

    if name == "FULLY_CONNECTED":  # weights [units, depth]
        w = _dims(inp(1))
        return out_elems * (w[-1] if w else 0)
    if name == "TRANSPOSE_CONV":  # (output_shape, weights [out_c, kh, kw, in_c], input)
        w = _dims(inp(1))
        return (inp(2).num_elements if inp(2) else 0) * _prod(w[:3])
    if name == "CONV_3D_TRANSPOSE":  # (output_shape, filter [kd, kh, kw, out_c, in_c], input)
        return (inp(2).num_elements if inp(2) else 0) * _prod(_dims(inp(1))[:4])
    if name == "BATCH_MATMUL":
        a = _dims(inp(0))
        if len(a) < 2:
            return 0
        depth = a[-2] if op.options.get("adj_x") else a[-1]
        return out_elems * depth
    if name in _POOLS:
        return out_elems * op.options.get("filter_height", 1) * op.options.get("filter_width", 1)
    if name in _REDUCTIONS:
        return inp(0).num_elements if inp(0) else 0
    return out_elems * _PER_ELEMENT.get(name, 0)


def _layer(sub: Subgraph, op: Operator, sizes: TensorSizes) -> LayerCost:
    """One operator's costs, from the sizes of its subgraph's tensors."""
    tensors, nbytes, constant = sub.tensors, sizes.nbytes, sizes.constant
    consts: set[int] = set()  # each constant once, however often it is read
    params = param_bytes = input_bytes = output_bytes = 0
    for t in op.inputs:
        if t < 0:
            continue
        if not constant[t]:
            input_bytes += nbytes[t]
        elif t not in consts:
            consts.add(t)
            params += sizes.elements[t]
            param_bytes += nbytes[t]
    shapes = []
    out_elems = 0
    for t in op.outputs:
        if t >= 0:
            shapes.append(tensors[t].shape)
            output_bytes += nbytes[t]
            out_elems += sizes.elements[t]
    return LayerCost(op.index, op.name, op.fused_activation, tuple(shapes),
                     macs_given_outputs(sub, op, out_elems), params, param_bytes,
                     input_bytes, output_bytes)


def _subgraph_macs(model: Model, index: int, visiting: frozenset[int],
                   own: list[int] | None = None) -> int:
    """MACs of a whole subgraph, called subgraphs included (recursion-safe).

    ``own`` gives the operators' own MACs when the caller has them already.
    """
    if index in visiting:
        return 0
    sub = model.subgraphs[index]
    if own is None:
        own = [operator_macs(sub, op, sub.sizes.elements) for op in sub.operators]
    inner = visiting | {index}
    return sum(_with_called(model, op, macs, inner) for op, macs in zip(sub.operators, own,
                                                                          strict=True))


def _model_macs(model: Model, own: list[int]) -> int:
    """MACs of the main subgraph, the subgraphs it calls included (none in a model of one).

    ``own`` is each main-subgraph operator's own MACs.
    """
    if len(model.subgraphs) == 1:  # nothing to call that is not already being counted
        return sum(own)
    return _subgraph_macs(model, 0, frozenset(), own)


def _with_called(model: Model, op: Operator, own: int, visiting: frozenset[int]) -> int:
    """An operator's MACs plus those of the subgraphs it runs."""
    called = op.called_subgraphs
    if not called:
        return own
    macs = [_subgraph_macs(model, i, visiting) for i in called]
    return own + (max(macs) if op.opcode == "IF" else sum(macs))


def peak_activation_bytes(sub: Subgraph, sizes: TensorSizes | None = None) -> int:
    """Most activation bytes live at once when operators run in their listed order.

    A tensor is live from the operator that writes it (or the start, for subgraph inputs)
    to its last reader (or the end, for subgraph outputs); variables live throughout. No
    two tensors share memory, as an arena planner without in-place reuse would place them.
    ``sizes`` gives every tensor's size when the caller has counted them already.
    """
    sizes = sizes or sub.sizes
    nbytes, constant = sizes.nbytes, sizes.constant
    last_use: dict[int, int] = {}
    for op in sub.operators:
        for t in op.inputs:
            if t >= 0 and not constant[t]:
                last_use[t] = op.index
    end = len(sub.operators)
    for t in sub.outputs:
        last_use[t] = end
    variables = [t.index for t in sub.tensors if t.is_variable]
    for t in variables:
        last_use[t] = end
    live = {t: nbytes[t] for t in sub.inputs if not constant[t]}
    live.update({t: nbytes[t] for t in variables})
    current = sum(live.values())
    peak = current
    for op in sub.operators:
        i = op.index
        for t in op.outputs:
            if t >= 0 and not constant[t] and t not in live:
                live[t] = nbytes[t]
                current += nbytes[t]
        if current > peak:
            peak = current
        for t in (*op.inputs, *op.outputs):  # a repeated tensor is gone after its first pop
            if t in live and last_use.get(t, i) <= i:
                current -= live.pop(t)
    return peak


def _constants(model: Model) -> dict[int, tuple[int, int]]:
    """Buffer index -> (elements, bytes) of the constant tensors of every subgraph.

    Keyed by buffer so that a constant shared by several tensors counts once (the last
    tensor listed names its size).
    """
    constants: dict[int, tuple[int, int]] = {}
    for sub in model.subgraphs:
        sizes = sub.sizes
        for t, constant, elements, nbytes in zip(sub.tensors, sizes.constant, sizes.elements,
                                                 sizes.nbytes, strict=True):
            if constant:
                constants[t.buffer] = elements, nbytes
    return constants


@dataclass(slots=True)
class Totals:
    """The whole-model numbers of :class:`ModelCost`, without the per-layer costs."""

    macs: int
    params: int
    param_bytes: int
    activation_bytes: int
    peak_activation_bytes: int
    model_bytes: int


def model_totals(model: Model, own_macs: list[int]) -> Totals:
    """The model's totals, given each main-subgraph operator's own MACs.

    Split from :func:`analyze` for the predictors' features, which count the per-operator
    costs themselves and need only these totals, not a LayerCost per operator.
    """
    main = model.main
    sizes = main.sizes
    constants = _constants(model).values()
    return Totals(
        macs=_model_macs(model, own_macs),
        params=sum(elements for elements, _ in constants),
        param_bytes=sum(nbytes for _, nbytes in constants),
        activation_bytes=sum(n for n, c in zip(sizes.nbytes, sizes.constant, strict=True)
                             if not c),
        peak_activation_bytes=peak_activation_bytes(main, sizes),
        model_bytes=model.size_bytes,
    )


def analyze(model: Model) -> ModelCost:
    """Cost of every operator of the main subgraph and the model's totals."""
    main = model.main
    sizes = main.sizes
    layers = [_layer(main, op, sizes) for op in main.operators]
    totals = model_totals(model, [layer.macs for layer in layers])
    ops_by_type: dict[str, int] = {}
    for layer in layers:
        ops_by_type[layer.op] = ops_by_type.get(layer.op, 0) + 1
    return ModelCost(
        source=model.source,
        layers=layers,
        macs=totals.macs,
        params=totals.params,
        param_bytes=totals.param_bytes,
        activation_bytes=totals.activation_bytes,
        peak_activation_bytes=totals.peak_activation_bytes,
        model_bytes=totals.model_bytes,
        subgraphs=len(model.subgraphs),
        ops_by_type=dict(sorted(ops_by_type.items(), key=lambda kv: -kv[1])),
    )
