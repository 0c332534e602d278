"""Regor's supported-operator and TFLite-semantic checks, restated over our IR.

Vela 5.2.0 decides placement with its C++ core (Regor): each operator runs a list of
generic checks, then the accelerator family's own (U55 and U65 share one list, U85 has
another), and the first that fails leaves the operator on the CPU with its message. The
checks below keep Regor's order and its messages; their docstrings state the constraint,
as Vela's ``SUPPORTED_OPS.md`` does. A model that breaks a TFLite semantic rule is refused
by Vela as a whole (:func:`rejection`). Sources: Vela's ``vela --supported-ops-report`` and
Regor's ``tflite_supported_operators*.cpp`` / ``tflite_model_semantics.cpp`` (Apache-2.0).
:mod:`perfsage.targets.vela_support` is the public face of this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from perfsage.graph.ir import Model, Operator, Subgraph, Tensor

# --- what each input of an operator is to Regor ---------------------------------------

_IFM, _WEIGHTS, _BIAS, _PARAMS = "ifm", "weights", "bias", "params"

#: Input roles per operator; operators not listed read feature maps only.
_ROLES: dict[str, tuple[str, ...]] = {
    "CONV_2D": (_IFM, _WEIGHTS, _BIAS),
    "DEPTHWISE_CONV_2D": (_IFM, _WEIGHTS, _BIAS),
    "FULLY_CONNECTED": (_IFM, _WEIGHTS, _BIAS),
    "TRANSPOSE_CONV": (_PARAMS, _WEIGHTS, _IFM, _BIAS),
    "SPLIT": (_PARAMS, _IFM),
    **{op: (_IFM, _PARAMS, _PARAMS, _PARAMS) for op in (
        "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", "MIRROR_PAD", "MEAN", "SUM",
        "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL", "TRANSPOSE",
        "SLICE", "STRIDED_SLICE", "SPLIT_V", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
        "TILE", "ARG_MAX", "ARG_MIN", "REVERSE_V2", "BROADCAST_TO")},
}
_ROLES["PADV2"] = (_IFM, _PARAMS, _IFM)  # the pad value is a (constant) feature map

#: Operators whose inputs all pass Regor's quantisation check unquantised.
_QUANT_EXEMPT = frozenset({
    "ARG_MAX", "MIRROR_PAD", "QUANTIZE", "SHAPE", "TRANSPOSE", "GATHER_ND",
    "GATHER", "SELECT", "SELECT_V2", "SCATTER_ND", "PAD", "PADV2", "REDUCE_ALL",
    "REDUCE_ANY", "EXPAND_DIMS",
})
_CONVOLUTIONS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})
_BINARY_ELEMENTWISE = frozenset({
    "ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "SQUARED_DIFFERENCE", "DIV", "PRELU",
})
#: U55/U65 operators that accept 32-bit feature maps.
_INT32_OK_U55 = frozenset({
    "SUM", "ARG_MAX", "TRANSPOSE", "MIRROR_PAD", "ADD", "MUL", "SUB", "BATCH_MATMUL",
    "FULLY_CONNECTED", "RESHAPE", "SQUEEZE", "EXPAND_DIMS",
})
_FEATURE_MAP_DTYPES = {
    "EthosU55": frozenset({"uint8", "int8", "int16", "int32", "int64"}),
    "EthosU85": frozenset({"uint8", "int8", "int16", "int32", "int64", "bool"}),
}
_MAX_WEIGHT_SUM = {"EthosU55": (127 << 16, 127 << 16), "EthosU85": (127 << 16, 127 << 24)}
_MAX_BIAS = {"EthosU55": (1 << 40) - 1, "EthosU85": (1 << 48) - 1}


@dataclass(slots=True)
class _Op:
    """One operator with its tensors sorted by the role Regor gives them."""

    op: Operator
    sg: Subgraph
    ifms: list[Tensor]
    ofms: list[Tensor]
    weights: Tensor | None
    bias: Tensor | None
    params: list[Tensor]

    @classmethod
    def of(cls, op: Operator, sg: Subgraph) -> _Op:
        roles = _ROLES.get(op.opcode, ())
        ifms: list[Tensor] = []
        params: list[Tensor] = []
        weights = bias = None
        for i, t in enumerate(op.inputs):
            if t < 0:
                continue
            tensor = sg.tensors[t]
            role = roles[i] if i < len(roles) else _IFM
            if role == _WEIGHTS:
                weights = tensor
            elif role == _BIAS:
                bias = tensor
            elif role == _PARAMS:
                params.append(tensor)
            else:
                ifms.append(tensor)
        ofms = [sg.tensors[t] for t in op.outputs if t >= 0]
        return cls(op, sg, ifms, ofms, weights, bias, params)

    @property
    def opcode(self) -> str:
        return self.op.opcode

    @property
    def ifm(self) -> Tensor | None:
        return self.ifms[0] if self.ifms else None

    @property
    def ofm(self) -> Tensor | None:
        return self.ofms[0] if self.ofms else None

    def option(self, name: str, default=None):
        return self.op.options.get(name, default)


@dataclass(frozen=True, slots=True)
class Arch:
    """What the checks of one accelerator need: Regor's name and its operator types."""

    name: str  # "EthosU55", "EthosU65" or "EthosU85"
    supported: frozenset[str]

    @property
    def family(self) -> str:
        """The checker Regor uses: U65 shares U55's."""
        return "EthosU85" if self.name == "EthosU85" else "EthosU55"


Check = Callable[[_Op, Arch], str | None]


def _nhwc(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A shape padded with leading 1s to 4-D (Regor's ``Shape::PadAxes(shape, 4, 1)``)."""
    s = tuple(max(d, 1) for d in shape)[-4:]
    return (1,) * (4 - len(s)) + s  # type: ignore[return-value]


def _values(t: Tensor) -> np.ndarray | None:
    """A constant tensor's values in its own dtype, or None for activations."""
    return t.values()


def _fmt(value: float) -> str:
    """A float32 as Regor's messages print it: shortest form, no trailing ".0"."""
    return str(np.float32(value)).removesuffix(".0")


def _dtype_name(dtype: str) -> str:
    return dtype.capitalize()


def _only(*opcodes: str) -> Callable[[Check], Check]:
    """Mark a check as one that concerns only these operators (skipped for the others)."""
    def mark(check: Check) -> Check:
        check.opcodes = frozenset(opcodes)  # type: ignore[attr-defined]
        return check
    return mark


_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_RESIZES = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")


# --- Regor's generic checks, in its order ---------------------------------------------

def _op_type(o: _Op, arch: Arch) -> str | None:
    """The operator type must be one the accelerator runs."""
    if o.opcode not in arch.supported:
        return "Unsupported opType"
    return None


def _static_shapes(o: _Op, arch: Arch) -> str | None:
    """Only the first dimension of tensors can be dynamic."""
    for t in (*o.ifms, *o.params, *o.ofms):
        dims = t.shape_signature or ()
        if any(d < 0 for d in dims[1:]):
            return f"Only the first dimension of tensors can be dynamic ({t.name})"
    return None


def _tensor_dtypes(o: _Op, arch: Arch) -> str | None:
    """Feature maps must be int8, uint8, int16, int32 or int64 (bool too on U85)."""
    allowed = _FEATURE_MAP_DTYPES[arch.family]
    for t in (*o.ifms, *o.ofms):
        if t.dtype not in allowed:
            return (f"Operation has tensor with unsupported DataType {_dtype_name(t.dtype)} "
                    f"({t.name})")
    return None


@_only("SPLIT", "SPLIT_V")
def _num_splits(o: _Op, arch: Arch) -> str | None:
    """num_splits must match the number of outputs."""
    n = o.option("num_splits", 0)
    if n != len(o.ofms):
        return f"num_splits: {n} does not match the number of outputs: {len(o.ofms)}"
    return None


def _has_ifm_ofm(o: _Op, arch: Arch) -> str | None:
    """Operations must have at least one IFM and one OFM."""
    if not o.ifms:
        return "Operation without IFM"
    if not o.ofms:
        return "Operation without OFM"
    return None


def _has_shape(o: _Op, arch: Arch) -> str | None:
    """Tensors must have a shape; rank-0 constants are read as one element.

    A rank-0 feature map (a loop counter, a scalar out of a SHAPE -> STRIDED_SLICE chain)
    has none.
    """
    for t in (*o.ifms, *o.params, *o.ofms):
        if not t.shape and not t.is_constant:
            return "Operation has shapeless tensor"
    return None


@_only("FULLY_CONNECTED")
def _fc_weight_shape(o: _Op, arch: Arch) -> str | None:
    """FullyConnected weights must be on the form O,1,1,..,1,I."""
    if o.weights is not None:
        shape = o.weights.shape
        if len(shape) < 2 or math.prod(shape) != shape[0] * shape[-1]:
            return f"Unsupported weights shape: {list(shape)}"
    return None


def _quantized(o: _Op, arch: Arch) -> str | None:
    """Input(s), Output and Weight tensors must have quantization parameters."""
    if o.opcode in _QUANT_EXEMPT:
        return None
    for t in (*o.ifms, *o.ofms, *((o.weights,) if o.weights is not None else ())):
        q = t.quantization
        if q is None or not q.scale or not q.zero_point:
            return f"Operation has tensor {t.name} with missing quantization parameters"
    return None


def _positive_scales(o: _Op, arch: Arch) -> str | None:
    """Quantization scale of any tensor must be positive."""
    for t in (*o.ifms, *o.ofms, *((o.weights,) if o.weights is not None else ())):
        scales = t.quantization.scale if t.quantization is not None else ()
        if scales and min(scales) <= 0:  # min(): per-channel weights have hundreds
            return f"Quantization scale of any tensor must be positive ({t.name})"
    return None


def _per_axis_quant(o: _Op, arch: Arch) -> str | None:
    """Per-axis quantization is only supported by convolutions and FullyConnected."""
    if o.opcode in _CONVOLUTIONS or o.opcode == "FULLY_CONNECTED":
        return None
    for t in (*o.ifms, *o.params, *o.ofms):
        q = t.quantization
        if q is not None and (len(q.scale) > 1 or len(q.zero_point) > 1):
            return "Operation does not support per-axis quantization"
    return None


@_only("MINIMUM", "MAXIMUM")
def _matching_quant(o: _Op, arch: Arch) -> str | None:
    """Both input quantization parameters must match the OFM's (MINIMUM, MAXIMUM)."""
    if len(o.ifms) == 2:
        qs = [t.quantization for t in (*o.ifms, o.ofm)]
        if any(q != qs[-1] for q in qs):
            return "Operation has mismatching quantization parameters."
    return None


def _zero_points(o: _Op, arch: Arch) -> str | None:
    """Zero-points must be 0 for Int32 and non-negative for unsigned dataTypes."""
    if o.opcode in ("AVERAGE_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "DIV",
                    "UNIDIRECTIONAL_SEQUENCE_LSTM"):
        return None
    for t in (*o.ifms, *o.ofms):
        q = t.quantization
        if q is None:
            continue
        for zp in q.zero_point:
            if (t.dtype == "int32" and zp != 0) or (t.dtype.startswith("uint") and zp < 0):
                return f"tensor {t.name} has unsupported zeroPoint: {zp}"
    return None


@_only(*_WEIGHTED)
def _weights_precision(o: _Op, arch: Arch) -> str | None:
    """Weight tensors must be 8-bit precision."""
    if o.weights is not None and o.weights.bits != 8:
        return f"Weights tensor with precision: {_dtype_name(o.weights.dtype)}"
    return None


@_only(*_WEIGHTED)
def _weight_sum(o: _Op, arch: Arch) -> str | None:
    """The sum of absolute weights of one output channel has a hardware limit."""
    w, ifm = o.weights, o.ifm
    if w is None or ifm is None or not w.is_constant:
        return None
    limit = _MAX_WEIGHT_SUM[arch.family][0 if ifm.bits == 8 else 1]
    values = _values(w)
    if values is None or values.size == 0:
        return None
    # Depthwise weights are 1HWC (channels last); the others are O...I.
    out_axis = -1 if o.opcode == "DEPTHWISE_CONV_2D" else 0
    out_channels = w.shape[out_axis] or 1
    if 255 * values.size // out_channels < limit:
        return None  # cannot overflow, whatever the values
    q = w.quantization
    zp = np.asarray(q.zero_point if q is not None and q.zero_point else (0,), np.int64)
    per_out = np.moveaxis(values.reshape(w.shape), out_axis, 0).reshape(out_channels, -1)
    zps = zp if zp.size == out_channels else np.full(out_channels, zp[0])
    sums = np.abs(per_out.astype(np.int64) - zps[:, None]).sum(axis=1)
    worst = int(sums.max())
    if worst > limit:
        return f"The absolute sum of weight-tensor elements: {worst} exceeds limit: {limit}"
    return None


@_only(*_WEIGHTED)
def _bias(o: _Op, arch: Arch) -> str | None:
    """Bias values must be constant Int32 or Int64, stored along the channel axis."""
    b = o.bias
    if b is None:
        return None
    if b.num_elements > (b.shape[-1] if b.shape else 1):
        return f"Bias shape: {list(b.shape)}"
    if not b.is_constant:
        return "Operation has non-constant bias tensor."
    if b.dtype not in ("int32", "int64"):
        return f"Operation has bias with type:{_dtype_name(b.dtype)}"
    if b.dtype == "int64":
        values = _values(b)
        if values is not None and values.size and int(values.max()) > _MAX_BIAS[arch.family]:
            return f"Bias is out of range: {int(values.max())} > {_MAX_BIAS[arch.family]}"
    return None


@_only("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pooling(o: _Op, arch: Arch) -> str | None:
    """Pooling kernels: height <= 256 and H*W <= 65536; SAME average pooling W, H <= 8."""
    w, h = o.option("filter_width", 1), o.option("filter_height", 1)
    if o.opcode == "AVERAGE_POOL_2D" and o.option("padding") == "SAME":
        if not 1 <= w <= 8:
            return f"kernel width: {w} out of range"
        if not 1 <= h <= 8:
            return f"kernel height: {h} out of range"
        return None
    if not 1 <= h <= 256:
        return f"kernel height: {h} out of range"
    if h * w > 256 * 256:
        return f"kernel product: {h * w} out of range"
    return None


@_only("TRANSPOSE_CONV")
def _transpose_conv(o: _Op, arch: Arch) -> str | None:
    """Transpose convolution: strides 1x1 or 2x2 and OFM = IFM * stride (+ kernel - stride)."""
    if o.weights is None:
        return None
    sx, sy = o.option("stride_w", 1), o.option("stride_h", 1)
    _, ih, iw, _ = _nhwc(o.ifm.shape)
    _, oh, ow, _ = _nhwc(o.ofm.shape)
    kh, kw = o.weights.shape[1], o.weights.shape[2]
    if not (1 <= sx <= 2 and 1 <= sy <= 2):
        return f"stride out of range: ({sx},{sy})"
    if (sx, sy) == (1, 2) and not (iw == 1 and kw == 1):
        return f"unsupported stride combination: ({sx},{sy})"
    if (sx, sy) == (2, 1) and not (ih == 1 and kh == 1):
        return f"unsupported stride combination: ({sx},{sy})"
    if o.option("padding") == "SAME":
        if (iw * sx, ih * sy) != (ow, oh):
            return "(Padding::SAME) Unsupported IFM/OFM shapes."
    elif (iw * sx + max(kw - sx, 0), ih * sy + max(kh - sy, 0)) != (ow, oh):
        return "(Padding::VALID) Unsupported IFM/OFM shapes."
    return None


@_only("RSQRT", "LOG")
def _int8_or_int16_ifm(o: _Op, arch: Arch) -> str | None:
    """RSQRT and LOG need an Int8 or Int16 IFM (LOG: and matching OFM type and shape)."""
    if o.ifm.dtype not in ("int8", "int16"):
        return f"{_dtype_name(o.ifm.dtype)} IFM"
    if o.opcode == "LOG" and (o.ifm.dtype != o.ofm.dtype or o.ifm.shape != o.ofm.shape):
        return "IFM and OFM must match"
    return None


@_only("SLICE", "STRIDED_SLICE", "MEAN", "PAD", "PADV2", "MIRROR_PAD",
                    "TRANSPOSE")
def _const_params(o: _Op, arch: Arch) -> str | None:
    """Parameter tensors must be constant."""
    for t in o.params:
        if not t.is_constant:
            return f"non-constant tensor {t.name}"
    return None


@_only("MEAN")
def _mean(o: _Op, arch: Arch) -> str | None:
    """MEAN: batch 1, depth only with a unit H, W or C, reduced axes <= 4096, element cap."""
    if not o.params:
        return None
    axes = _values(o.params[0])
    if axes is None:
        return None
    rank = len(o.ifm.shape)
    shape = _nhwc(o.ifm.shape)
    mask = [0, 0, 0, 0]
    for a in axes.tolist():
        mask[(a % rank) + 4 - rank] = 1
    if shape[0] > 1:
        return f"Batch > 1: {list(shape)}"
    if mask[3] and not any(d == 1 for d in shape[1:]):
        return f"Unsupported depth-reduction.  IFM: {', '.join(map(str, shape))}"
    if any(m and d > 64 * 64 for m, d in zip(mask, shape, strict=True)):
        return "Reduced axis is too large"
    elements = math.prod(d for m, d in zip(mask, shape, strict=True) if m)
    cap = {"int8": 1 << 24, "uint8": 1 << 23, "int16": 1 << 16}.get(o.ifm.dtype)
    if cap is None:
        return f"Unsupported Mean IFM type {_dtype_name(o.ifm.dtype)}"
    if elements > cap:
        return f"Too many reduced elements: {elements}"
    return None


@_only("SOFTMAX")
def _softmax(o: _Op, arch: Arch) -> str | None:
    """The product of SOFTMAX's IFM width and height must be at most 65536."""
    _, h, w, _ = _nhwc(o.ifm.shape)
    if h * w > 1 << 16:
        return f"W * H = {h * w}"
    return None


@_only("PAD", "PADV2", "MIRROR_PAD")
def _pad_params(o: _Op, arch: Arch) -> str | None:
    """Padding amounts must be Int32 or Int64."""
    if o.params:
        if o.params[0].dtype not in ("int32", "int64"):
            return f"Params tensor with datatype: {_dtype_name(o.params[0].dtype)}"
    return None


@_only("TRANSPOSE")
def _transpose_rank(o: _Op, arch: Arch) -> str | None:
    """A transpose may have at most 8 dimensions."""
    if o.params and o.params[0].num_elements > 8:
        return "Unsupported transpose-shape"
    return None


@_only("STRIDED_SLICE")
def _strided_slice(o: _Op, arch: Arch) -> str | None:
    """Strided slices must stride over H or W only, and never backwards."""
    if len(o.params) < 3:
        return None
    strides = _values(o.params[2])
    if strides is None:
        return None
    rank = len(o.ifm.shape)
    steps = [1] * rank
    for i, s in enumerate(strides.tolist()[:rank]):
        steps[i] = s
    if any(s < 0 for s in steps):
        return "StridedSlice with unsupported negative stride"
    hw = {rank - 3, rank - 2} if rank >= 3 else set()
    if math.prod(s for i, s in enumerate(steps) if i not in hw) != 1:
        return "StridedSlice with unsupported stride axis"
    return None


@_only("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _lstm(o: _Op, arch: Arch) -> str | None:
    """LSTM: all gate weights present; no peephole, projection or layer normalisation."""
    inputs = o.op.inputs
    present = [i < len(inputs) and inputs[i] >= 0 for i in range(24)]
    if not all(present[1:9]):
        return "Missing gate weight tensor"
    if any(present[9:12]):
        return "Peephole weight tensor present"
    if present[16] or present[17]:
        return "Projection weight or bias tensor present"
    if any(present[20:24]):
        return "Normalization coefficient tensor present"
    return None


_GENERIC: tuple[Check, ...] = (
    _op_type, _static_shapes, _tensor_dtypes, _num_splits, _has_ifm_ofm, _has_shape,
    _fc_weight_shape, _quantized, _positive_scales, _per_axis_quant, _matching_quant,
    _zero_points, _weights_precision, _weight_sum, _bias, _pooling, _transpose_conv,
    _int8_or_int16_ifm, _const_params, _mean, _softmax, _pad_params, _transpose_rank,
    _strided_slice, _lstm,
)


# --- Ethos-U55/U65 checks --------------------------------------------------------------

@_only(*_BINARY_ELEMENTWISE)
def _u55_broadcast(o: _Op, arch: Arch) -> str | None:
    """One input tensor of an elementwise operation must have the output's shape.

    A constant input broadcast both ways (a layer norm's gain times a per-row scale)
    passes: Vela expands it to the output's shape before this check.
    """
    if len(o.ifms) == 2:
        out = o.ofm.shape
        if not any(t.shape == out or t.is_constant for t in o.ifms):
            return "Operation has invalid broadcast."
    return None


def _u55_int32(o: _Op, arch: Arch) -> str | None:
    """Only some operations take 32-bit feature maps on U55/U65."""
    if o.opcode in _INT32_OK_U55:
        return None
    if any(t.dtype == "int32" for t in (*o.ifms, *o.ofms)):
        return "Operation does not support Int32 inputs/outputs"
    return None


@_only("ARG_MAX")
def _u55_argmax(o: _Op, arch: Arch) -> str | None:
    """ARG_MAX must run along the depth axis, at most 127 deep."""
    depth = _nhwc(o.ifm.shape)[3]
    if depth > 127:
        return f"The depth of the argmax: {depth}, is over the limit: 127."
    axis = _values(o.params[0]) if o.params else None
    rank = len(o.ifm.shape)
    if axis is not None and axis.size and int(axis[0]) % rank != rank - 1:
        return (f"The axis of the argmax: {int(axis[0])}, is not equal to the index of the "
                f"depth axis: {rank - 1} ")
    return None


@_only("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D")
def _u55_stride(o: _Op, arch: Arch) -> str | None:
    """Strides above 3 need VALID padding and no dilation (and other kernels none at all)."""
    if "stride_w" not in o.op.options:
        return None
    sx, sy = o.option("stride_w", 1), o.option("stride_h", 1)
    if sx <= 3 and sy <= 3:
        return None
    if o.opcode not in ("CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return f"Unsupported kernel stride: {sx}, {sy}"
    dilated = o.option("dilation_w_factor", 1) != 1 or o.option("dilation_h_factor", 1) != 1
    if dilated or not _padding_is_zero(o):
        return f"Unsupported kernel stride: {sx}, {sy}"
    return None


def _padding_is_zero(o: _Op) -> bool:
    """True when a SAME-padded kernel happens to need no padding, or padding is VALID."""
    if o.option("padding") != "SAME":
        return True
    _, ih, iw, _ = _nhwc(o.ifm.shape)
    if o.opcode == "CONV_2D":
        kh, kw = o.weights.shape[1], o.weights.shape[2]
    else:
        kh, kw = o.option("filter_height", 1), o.option("filter_width", 1)
    sx, sy = o.option("stride_w", 1), o.option("stride_h", 1)
    dx, dy = o.option("dilation_w_factor", 1), o.option("dilation_h_factor", 1)

    def total(size: int, k: int, s: int, d: int) -> int:
        out = -(-size // s)
        return max((out - 1) * s + (k - 1) * d + 1 - size, 0)

    return total(ih, kh, sy, dy) == 0 and total(iw, kw, sx, dx) == 0


@_only("FULLY_CONNECTED", "BATCH_MATMUL")
def _u55_matmul(o: _Op, arch: Arch) -> str | None:
    """Matrix products of two feature maps: int8, reduced axis and depth <= 65536."""
    if o.opcode == "FULLY_CONNECTED" and (o.weights is None or o.weights.is_constant):
        return None
    ifm = o.ifm
    shape = list(_nhwc(ifm.shape))
    if o.option("adj_x", False):
        shape[2], shape[3] = shape[3], shape[2]
    if shape[3] > 1 << 16:
        return f"The reduced Axis is: {shape[3]}"
    if _nhwc(o.ofm.shape)[3] > 1 << 16:
        return f"OFM channel: {_nhwc(o.ofm.shape)[3]}"
    if ifm.dtype != "int8":
        return f"IFM has datatype: {_dtype_name(ifm.dtype)}"
    return None


#: Transposes of the last three axes (H, W, C) the U55 runs directly or by decomposition.
_TRANSPOSE_KINDS = {(1, 0, 2): "NWHC", (0, 2, 1): "NHCW", (2, 1, 0): "NCWH",
                    (1, 2, 0): "NWCH", (2, 0, 1): "NCHW"}


@_only("TRANSPOSE")
def _u55_transpose(o: _Op, arch: Arch) -> str | None:
    """Transposes other than the identity are limited in size.

    8/16-bit: NWHC, NHCW, NCWH, NWCH and NCHW of a 3-D tensor (or one whose other axes are
    1) take H, W, C <= 2^16; any other permutation needs every product of N-2 axes
    <= 2^16. 32-bit: rank <= 4, and only NHWC (C <= 2^16), NWHC (N = 1, H, W <= 2^16,
    C <= 2^14) and NHCW (N*H, W, C <= 2^16).
    """
    if not o.params:
        return None
    values = _values(o.params[0])
    if values is None:
        return None
    perm = values.tolist()
    shape = tuple(max(d, 1) for d in o.ifm.shape)
    rank = len(shape)
    if rank < 3:  # seen as (1, ..., ) with the leading axes fixed
        pad = 3 - rank
        perm = list(range(pad)) + [p + pad for p in perm]
        shape = (1,) * pad + shape
        rank = 3
    lead = rank - 3
    fixed = perm[:lead] == list(range(lead))
    kind = _TRANSPOSE_KINDS.get(tuple(p - lead for p in perm[lead:])) if fixed else None
    identity = perm == list(range(rank))
    limit = 1 << 16
    n_h = math.prod(shape[:lead + 1])
    h, w, c = shape[-3:]
    shown = ", ".join(map(str, shape))
    if o.ifm.dtype == "int32":
        if len(o.ifm.shape) > 4:
            return f"32-bit transpose with rank > 4: {shown}"
        if identity:
            return f"32-bit NHWC transpose with depth > 65536: {shown}" if c > limit else None
        if kind == "NWHC":
            if n_h // h > 1 or h > limit or w > limit or c > 1 << 14:
                return f"32-bit NWHC transpose with shape out of range: {shown}"
            return None
        if kind == "NHCW":
            if n_h > limit or w > limit or c > limit:
                return f"32-bit NHCW transpose with shape out of range: {shown}"
            return None
        return "Unsupported transpose-type"
    if identity:
        return None
    if kind is not None and math.prod(shape[:lead]) == 1:
        if max(h, w, c) > limit:
            return f"Transpose with permutation {kind} has shape out of range: {shown}"
        return None
    largest = math.prod(sorted(shape)[2:])  # the largest product of N-2 axes
    if largest > limit:
        return (f"Transpose with permutation {', '.join(map(str, values.tolist()))} has "
                f"shape out of range: {', '.join(map(str, o.ifm.shape))}")
    return None


@_only(*_RESIZES)
def _u55_resize(o: _Op, arch: Arch) -> str | None:
    """Resizes must upscale by 2, 4 or 8 (2 with half-pixel centres), equally in H and W."""
    _, ih, iw, _ = _nhwc(o.ifm.shape)
    _, oh, ow, _ = _nhwc(o.ofm.shape)
    if (ih, iw) == (oh, ow) or (ih == 1 and iw == 1):
        return None
    align = bool(o.option("align_corners", False))
    half = o.opcode == "RESIZE_BILINEAR" and bool(o.option("half_pixel_centers", False))
    if align:
        h_up = 1.0 if oh == 1 else np.float32(oh - 1) / np.float32(ih - 1)
        w_up = 1.0 if ow == 1 else np.float32(ow - 1) / np.float32(iw - 1)
    else:
        h_up, w_up = np.float32(oh) / np.float32(ih), np.float32(ow) / np.float32(iw)
    if h_up != w_up:
        if not ((oh == 1 and h_up == 1) or (ow == 1 and w_up == 1)):
            return ("HW scale-factor is not equal and operation has unsupported parameter "
                    f"combination ofm h={oh}, h scale-factor={_fmt(h_up)}, ofm w={ow}, "
                    f"w scale-factor={_fmt(w_up)}.")
        if half:
            return ("HW scale-factor is not equal and Resize Bilinear has half pixel "
                    f"centers, h scale-factor={_fmt(h_up)}, w scale-factor={_fmt(w_up)}.")
    up = float(max(h_up, w_up))
    top = 2 if half else 8
    if not (up == int(up) and up > 1 and up <= top and int(up) & (int(up) - 1) == 0):
        return f"Scaling matches and operation has unsupported scale-factor={_fmt(up)}"
    return None


_U55: tuple[Check, ...] = (
    _u55_broadcast, _u55_int32, _u55_argmax, _u55_stride, _u55_matmul, _u55_transpose,
    _u55_resize,
)


# --- Ethos-U85 checks ------------------------------------------------------------------

@_only(*_RESIZES)
def _u85_resize(o: _Op, arch: Arch) -> str | None:
    """Resize scale factors: at most 2048 (1024 with half-pixel centres); bilinear by 2^n."""
    _, ih, iw, _ = _nhwc(o.ifm.shape)
    _, oh, ow, _ = _nhwc(o.ofm.shape)
    align = bool(o.option("align_corners", False))
    half = bool(o.option("half_pixel_centers", False))
    if o.opcode == "RESIZE_NEAREST_NEIGHBOR":
        half = not align or half
    if align and half:
        return ("Operation with both align_corners=true and half_pixel_centers=true (these "
                "are mutually exclusive)")

    def ratio(num: int, den: int) -> tuple[int, int]:
        return (num - 1, den - 1) if align and den > 1 else (num, den)

    ws, hs = ratio(ow, iw), ratio(oh, ih)
    for axis, (num, den) in (("width", ws), ("height", hs)):
        if num == 0 or den == 0:
            return f"unsupported {axis} scale-factor ({num}/{den})"
        factor = num // den
        if (half and factor > 1024) or factor > 2048:
            return f"{axis} scaleFactor exceeds {1024 if half else 2048}: {num}/{den}"
    if o.opcode == "RESIZE_BILINEAR" and not (iw == 1 and ih == 1):
        for axis, (num, den) in (("width", ws), ("height", hs)):
            factor = num // den
            if num % den or factor & (factor - 1):
                return (f"{axis} scale-factor must be an integer power of two. "
                        f"scale-factor: ({num}/{den})")
    return None


@_only("GATHER")
def _u85_gather(o: _Op, arch: Arch) -> str | None:
    """GATHER's axis must equal its batch_dims."""
    axis, batch = o.option("axis", 0), o.option("batch_dims", 0)
    if axis < 0:
        axis += len(o.ifm.shape)
    if axis != batch:
        return f"axis: {axis} != batch_dims: {batch}"
    return None


_U85: tuple[Check, ...] = (_u85_resize, _u85_gather)

_CHECKS = {"EthosU55": _GENERIC + _U55, "EthosU85": _GENERIC + _U85}


# --- Regor's TFLite semantic checks: failing one makes Vela refuse the model ----------

def _semantic_error(o: _Op) -> str | None:
    """The first TFLite semantic rule this operator breaks, as Vela words it, else None."""
    ifm, ofm = o.ifm, o.ofm
    if ifm is None or ofm is None:
        return None
    code = o.opcode
    eight_bit = ("int8", "uint8")
    if code in ("HARD_SWISH", "ARG_MAX") and ifm.dtype not in eight_bit:
        return "IFM has to be 8bit"
    if code == "ARG_MAX" and ofm.dtype not in ("int32", "int64"):
        return "For IFM that are signed, OFM must also be signed"
    if code == "UNIDIRECTIONAL_SEQUENCE_LSTM" and ifm.dtype not in ("int8", "int16"):
        return "IFM must be INT8 or INT16"
    same_types = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "ABS", "EXP", "LEAKY_RELU", "RSQRT",
                  "MINIMUM", "MAXIMUM", "HARD_SWISH", "UNIDIRECTIONAL_SEQUENCE_LSTM",
                  "GATHER"}
    if code in same_types and ifm.dtype != ofm.dtype:
        return "IFM and OFM types must match"
    if code in ("ADD", "MUL", "SUB") and len(o.ifms) == 2:
        if o.ifms[0].dtype != o.ifms[1].dtype:
            return "Both Input data types must match"
    if code == "SOFTMAX" and ifm.dtype != ofm.dtype and (ifm.dtype, ofm.dtype) != (
            "int8", "int16"):
        return "IFM and OFM types must match or upcast"
    return None


def rejection(model: Model) -> str | None:
    """Why Vela refuses ``model`` outright (a broken TFLite semantic rule), else None."""
    for sg in model.subgraphs:
        for op in sg.operators:
            error = _semantic_error(_Op.of(op, sg))
            if error is not None:
                ofm = sg.tensors[op.outputs[0]].name if op.outputs else ""
                return f"{op.name} '{ofm}' does not have valid TFLite semantics: {error}"
    return None


#: The TFLite operators Regor (the compiler of the pinned ethos-u-vela) can place on each
#: NPU family, as ``regor.tflite_operator_constraints`` lists them (ARGMAX spelt ARG_MAX as
#: in the TFLite schema). Written out because importing Regor costs a prediction's start-up
#: more than the rest of Vela's checks; tests/targets/test_vela_support.py holds the table
#: to Regor's own list, so a new Vela cannot drift from it unnoticed.
_U55_OPERATORS = frozenset({
    "ABS", "ADD", "ARG_MAX", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D",
    "DEPTHWISE_CONV_2D", "ELU", "EXP", "EXPAND_DIMS", "FULLY_CONNECTED", "GELU", "HARD_SWISH",
    "LEAKY_RELU", "LOG", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD",
    "MUL", "NEG", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
    "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "RSQRT", "SLICE", "SOFTMAX", "SPLIT", "SPLIT_V",
    "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE",
    "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK",
})
SUPPORTED_OPERATORS = {
    "EthosU55": _U55_OPERATORS,
    "EthosU65": _U55_OPERATORS,
    "EthosU85": _U55_OPERATORS | {
        "ASSIGN_VARIABLE", "CAST", "DIV", "EQUAL", "GATHER", "GREATER", "GREATER_EQUAL",
        "LESS", "LESS_EQUAL", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "NOT_EQUAL",
        "READ_VARIABLE", "REDUCE_ALL", "REDUCE_ANY", "SCATTER_ND", "SELECT", "SELECT_V2",
    },
}


def regor_operators(arch: str) -> frozenset[str]:
    """The TFLite operators Regor itself lists for an architecture ("EthosU55")."""
    from ethosu import regor

    # Regor spells one builtin differently from the TFLite schema.
    return frozenset({"ARGMAX": "ARG_MAX"}.get(name, name)
                     for name in regor.tflite_operator_constraints(arch))


def _supported_op_types(arch: str) -> frozenset[str]:
    found = SUPPORTED_OPERATORS.get(arch)
    return found if found is not None else regor_operators(arch)


@cache
def arch_for(accelerator_config: str) -> Arch:
    """The checks' view of a Vela ``--accelerator-config`` such as "ethos-u55-128"."""
    # Vela names Regor's architecture the same way: "ethos-u55-128" -> "EthosU55".
    name = "".join(p.capitalize() for p in accelerator_config.split("-")[:-1])
    return Arch(name, _supported_op_types(name))


@cache
def _checks_for(family: str, opcode: str) -> tuple[Check, ...]:
    """The checks that concern one operator type, in Regor's order."""
    return tuple(c for c in _CHECKS[family]
                 if opcode in getattr(c, "opcodes", frozenset({opcode})))


def unsupported_reason(op: Operator, sg: Subgraph, arch: Arch) -> str | None:
    """Why Vela leaves ``op`` on the CPU (the first failing check's message), else None."""
    view = _Op.of(op, sg)
    for check in _checks_for(arch.family, op.opcode):
        reason = check(view, arch)
        if reason is not None:
            return reason
    return None
