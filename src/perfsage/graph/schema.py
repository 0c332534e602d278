"""Name tables derived from the TFLite flatbuffer schema that ships with ai-edge-litert.

Everything here is computed from the generated schema module, so a newer schema (new
builtin operators, new option tables) is picked up without touching this file. No
TensorFlow is involved: ``schema_py_generated`` is plain flatbuffers-generated Python.
"""

from __future__ import annotations

import re
from functools import cache

from ai_edge_litert import schema_py_generated as fb

__all__ = [
    "BUILTIN_OPERATORS",
    "DTYPE_NAMES",
    "ACTIVATION_NAMES",
    "fb",
    "options_class",
    "options2_class",
    "field_name",
    "enum_field_names",
]


def _enum_names(enum_class: type) -> dict[int, str]:
    """Map the integer values of a generated enum class onto their names."""
    return {
        value: name
        for name, value in vars(enum_class).items()
        if not name.startswith("_") and isinstance(value, int)
    }


#: Builtin operator code -> name, e.g. 3 -> "CONV_2D"; every operator of the schema.
BUILTIN_OPERATORS: dict[int, str] = _enum_names(fb.BuiltinOperator)

#: TensorType code -> lower-case dtype name, e.g. 9 -> "int8".
DTYPE_NAMES: dict[int, str] = {k: v.lower() for k, v in _enum_names(fb.TensorType).items()}

#: ActivationFunctionType code -> name, e.g. 3 -> "RELU6".
ACTIVATION_NAMES: dict[int, str] = _enum_names(fb.ActivationFunctionType)

# Option fields whose integer value is a schema enum. The generated Python carries no type
# information for fields, so this one table names them (field name -> enum class).
_DTYPE_FIELDS = ("quantized_bias_type", "in_data_type", "out_data_type", "output_type",
                 "out_type", "idx_out_type")
_ENUM_FIELDS: dict[str, dict[int, str]] = {
    "padding": _enum_names(fb.Padding),
    "fused_activation_function": ACTIVATION_NAMES,
    "weights_format": _enum_names(fb.FullyConnectedOptionsWeightsFormat),
    "kernel_type": _enum_names(fb.LSTMKernelType),
    "combiner": _enum_names(fb.CombinerType),
    "mode": _enum_names(fb.MirrorPadMode),
    "type": _enum_names(fb.LSHProjectionType),
    "reduce_function": _enum_names(fb.ReduceWindowFunction),
    "comparison_direction": _enum_names(fb.StablehloComparisonDirection),
    "compare_type": _enum_names(fb.StablehloComparisonType),
    "algorithm": _enum_names(fb.RngAlgorithm),
    **{name: DTYPE_NAMES for name in _DTYPE_FIELDS},
}


def enum_field_names(field: str) -> dict[int, str] | None:
    """Return the value->name table for an enum-typed option field, or None."""
    return _ENUM_FIELDS.get(field)


def _options_classes(union: type) -> dict[int, type]:
    """Map each member of an options union onto its generated object-API class."""
    classes = {}
    for code, name in _enum_names(union).items():
        cls = getattr(fb, name + "T", None)
        if cls is not None:
            classes[code] = cls
    return classes


_OPTIONS = _options_classes(fb.BuiltinOptions)
_OPTIONS2 = _options_classes(fb.BuiltinOptions2)


def options_class(code: int) -> type | None:
    """Object-API class of a ``BuiltinOptions`` union member (None for NONE/unknown)."""
    return _OPTIONS.get(code)


def options2_class(code: int) -> type | None:
    """Object-API class of a ``BuiltinOptions2`` union member (None for NONE/unknown)."""
    return _OPTIONS2.get(code)


# A word starts at a capital after a lower-case letter or digit, or at the last capital of a
# run that is followed by a lower-case letter: dilationWFactor -> dilation_w_factor.
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@cache
def field_name(camel: str) -> str:
    """Schema field name from the generated attribute name: ``strideW`` -> ``stride_w``."""
    return _WORD_START.sub("_", camel).lower()
