"""The graph a :class:`ModelBuilder` records, and its resolution into what gets written.

Layers are recorded with real-valued statistics only; int8 parameters are settled once the
whole graph is known (:meth:`Network.resolve`), because some operators (CONCATENATION,
pools, PAD, RESHAPE, RESIZE_*, DEPTH_TO_SPACE) must give their output the very parameters
of their inputs -- as the TFLite converter does -- and a later layer can tie two tensors
whose producers were recorded long before. Biases are quantised last: their scale is the
product of the (then known) input scale and the weight scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perfsage.builder import quant
from perfsage.builder.estimate import Stats


@dataclass(slots=True, eq=False)
class Bias:
    """An int32 bias still in real values, waiting for its layer's input scale."""

    values: np.ndarray
    layer_input: int  # tensor index
    weight_scales: np.ndarray


@dataclass(slots=True, eq=False)
class Tensor:
    """A recorded tensor: an activation (with statistics) or a constant (with data)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "int32" or "float32"
    data: np.ndarray | None = None
    stats: Stats | None = None
    fixed: tuple[float, int] | None = None  # int8 parameters a runtime mandates
    scales: np.ndarray | None = None  # per-channel scales of int8 weights
    axis: int = 0
    bias: Bias | None = None


@dataclass(slots=True, eq=False)
class Op:
    """A recorded operator; ``tied`` when its output must share its inputs' int8 params."""

    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: object | None = None
    tied: bool = False


@dataclass(slots=True)
class Quant:
    """Resolved quantisation of one tensor."""

    scale: np.ndarray  # float32
    zero_point: np.ndarray  # int64
    axis: int = 0


@dataclass(slots=True)
class Resolved:
    """The pruned, renumbered graph with final constants and quantisation."""

    tensors: list[Tensor]
    quant: list[Quant | None]
    data: list[np.ndarray | None]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


@dataclass
class Network:
    """Tensors and operators in the order they were recorded."""

    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)

    def add(self, tensor: Tensor) -> int:
        """Record a tensor; returns its index."""
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def resolve(self, outputs: list[int], int8: bool) -> Resolved:
        """Drop operators no output depends on, renumber, and settle int8 parameters."""
        ops = self._live_ops(outputs)
        used = set(self.inputs) | set(outputs)
        for op in ops:
            used.update(op.inputs)
            used.update(op.outputs)
        order = sorted(used)
        new = {old: i for i, old in enumerate(order)}
        params = self._activation_params(ops) if int8 else {}
        quants: list[Quant | None] = []
        data: list[np.ndarray | None] = []
        for old in order:
            t = self.tensors[old]
            q, d = None, t.data
            if int8 and t.stats is not None and t.dtype == "int8":
                scale, zp = params[old]
                q = Quant(np.array([scale], np.float32), np.array([zp], np.int64))
            elif int8 and t.scales is not None:
                q = Quant(t.scales, np.zeros(t.scales.shape[0], np.int64), t.axis)
            if t.bias is not None:
                d, q = self._bias(t.bias, params, int8)
            quants.append(q)
            data.append(d)
        renum = [Op(op.opcode, tuple(new[i] for i in op.inputs),
                    tuple(new[i] for i in op.outputs), op.options, op.tied) for op in ops]
        return Resolved([self.tensors[i] for i in order], quants, data, renum,
                        [new[i] for i in self.inputs], [new[i] for i in outputs])

    def _live_ops(self, outputs: list[int]) -> list[Op]:
        needed = set(outputs)
        live = []
        for op in reversed(self.ops):
            if needed.intersection(op.outputs):
                live.append(op)
                needed.update(op.inputs)
        return live[::-1]

    def _activation_params(self, ops: list[Op]) -> dict[int, tuple[float, int]]:
        """int8 (scale, zero point) per activation; tied tensors share one range."""
        parent = {i: i for i, t in enumerate(self.tensors) if t.stats is not None}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for op in ops:
            if op.tied:
                members = [i for i in (*op.inputs, *op.outputs) if i in parent]
                for other in members[1:]:
                    a, b = find(members[0]), find(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
        groups: dict[int, list[int]] = {}
        for i in parent:
            groups.setdefault(find(i), []).append(i)
        params: dict[int, tuple[float, int]] = {}
        for members in groups.values():
            fixed = [self.tensors[i].fixed for i in members if self.tensors[i].fixed]
            if fixed:
                p = fixed[0]
            else:
                stats = [self.tensors[i].stats for i in members]
                p = quant.affine_params(min(s.lo for s in stats), max(s.hi for s in stats))
            params.update((i, p) for i in members)
        return params

    def _bias(self, bias: Bias, params: dict[int, tuple[float, int]],
              int8: bool) -> tuple[np.ndarray, Quant | None]:
        if not int8:
            return bias.values.astype(np.float32), None
        input_scale = params[bias.layer_input][0]
        scale = (np.float64(input_scale) * bias.weight_scales.astype(np.float64))
        values = quant.quantize_bias(bias.values, input_scale, bias.weight_scales)
        return values, Quant(scale.astype(np.float32), np.zeros(scale.shape[0], np.int64))
