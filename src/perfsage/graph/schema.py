"""Name tables and option layouts of the TFLite flatbuffer schema that ships with ai-edge-litert.

The reader needs the schema's names (operators, tensor types, enums) and, per builtin
options table, where each field lies and how it is stored. Both come from the generated
schema module (``schema_py_generated``, plain flatbuffers-generated Python, no TensorFlow),
but importing that module costs a prediction's start-up some 23 ms of CPU, a seventh of
importing NumPy. So :func:`derive_tables` reads them off the generated module once, by
calling each generated field accessor on a probe that records the vtable slot and scalar
type it asks for, and ``scripts/write_schema_tables.py`` writes the result to
:mod:`perfsage.graph.schema_tables`; tests/graph/test_schema_tables.py holds the written
tables equal to what the installed schema derives, so a newer schema cannot drift from them
unnoticed. The generated module itself (``fb``) is imported only where it is used: the
builder, and options tables holding strings (three of them).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from perfsage.graph import schema_tables as tables
from perfsage.graph.ir import SUBGRAPH_OPTION_SUFFIX

__all__ = [
    "BUILTIN_OPERATORS",
    "DTYPE_NAMES",
    "ACTIVATION_NAMES",
    "OptionsLayout",
    "options_layout",
    "options2_layout",
    "field_name",
    "enum_field_names",
    "derive_tables",
]

#: Builtin operator code -> name, e.g. 3 -> "CONV_2D"; every operator of the schema.
BUILTIN_OPERATORS: dict[int, str] = tables.BUILTIN_OPERATORS

#: TensorType code -> lower-case dtype name, e.g. 9 -> "int8".
DTYPE_NAMES: dict[int, str] = tables.DTYPE_NAMES

#: ActivationFunctionType code -> name, e.g. 3 -> "RELU6".
ACTIVATION_NAMES: dict[int, str] = tables.ENUMS["ActivationFunctionType"]

# Option fields whose integer value is a schema enum. The generated Python carries no type
# information for fields, so this one table names them (field name -> enum).
_DTYPE_FIELDS = ("quantized_bias_type", "in_data_type", "out_data_type", "output_type",
                 "out_type", "idx_out_type")
_ENUM_OF_FIELD = {
    "padding": "Padding", "fused_activation_function": "ActivationFunctionType",
    "weights_format": "FullyConnectedOptionsWeightsFormat", "kernel_type": "LSTMKernelType",
    "combiner": "CombinerType", "mode": "MirrorPadMode", "type": "LSHProjectionType",
    "reduce_function": "ReduceWindowFunction",
    "comparison_direction": "StablehloComparisonDirection",
    "compare_type": "StablehloComparisonType", "algorithm": "RngAlgorithm",
}
_ENUM_FIELDS: dict[str, dict[int, str]] = {
    **{field: tables.ENUMS[enum] for field, enum in _ENUM_OF_FIELD.items()},
    **{name: DTYPE_NAMES for name in _DTYPE_FIELDS},
}


def enum_field_names(field: str) -> dict[int, str] | None:
    """Return the value->name table for an enum-typed option field, or None."""
    return _ENUM_FIELDS.get(field)


@dataclass(frozen=True, slots=True)
class OptionsLayout:
    """Where the fields of one builtin options table lie, and how they are stored.

    ``fields``: (snake_case name, vtable slot, struct code, default when absent) in the
    schema's order; a code starting with ``[`` is a vector of that scalar. ``decodable``:
    False where a field is a string or a table (then the generated object API decodes it).
    """

    name: str
    fields: tuple[tuple[str, int, str, Any], ...]
    decodable: bool

    @property
    def scalars_only(self) -> bool:
        """Every field a scalar: the table is wholly described by its vtable and bytes."""
        return self.decodable and not any(code.startswith("[") for _, _, code, _ in self.fields)

    @property
    def names_subgraphs(self) -> bool:
        """A field names a subgraph (WHILE, IF, CALL_ONCE...)."""
        return any(name.endswith(SUBGRAPH_OPTION_SUFFIX) for name, _, _, _ in self.fields)


@cache
def _layouts(union: str) -> dict[int, OptionsLayout]:
    return {code: OptionsLayout(name, tuple(tuple(f) for f in fields), decodable)
            for code, (name, fields, decodable) in tables.OPTIONS[union].items()}


def options_layout(code: int) -> OptionsLayout | None:
    """Layout of a ``BuiltinOptions`` union member (None for NONE/unknown)."""
    return _layouts("BuiltinOptions").get(code)


def options2_layout(code: int) -> OptionsLayout | None:
    """Layout of a ``BuiltinOptions2`` union member (None for NONE/unknown)."""
    return _layouts("BuiltinOptions2").get(code)


# A word starts at a capital after a lower-case letter or digit, or at the last capital of a
# run that is followed by a lower-case letter: dilationWFactor -> dilation_w_factor.
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@cache
def field_name(camel: str) -> str:
    """Schema field name from the generated attribute name: ``strideW`` -> ``stride_w``."""
    return _WORD_START.sub("_", camel).lower()


def __getattr__(name: str) -> Any:
    """``fb``: the generated schema module, imported on first use (builder, tests)."""
    if name == "fb":
        from ai_edge_litert import schema_py_generated

        return schema_py_generated
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- reading the tables off the generated module ----------------------------------------------

def _enum_names(enum_class: type) -> dict[int, str]:
    """Map the integer values of a generated enum class onto their names."""
    return {value: name for name, value in vars(enum_class).items()
            if not name.startswith("_") and isinstance(value, int)}


class _Probe:
    """Stands in for a generated table's ``_tab``: records what one accessor reads."""

    Pos = 0

    def __init__(self) -> None:
        self.slot: int | None = None
        self.flags: Any = None
        self.vector = False
        self.other = False

    def Offset(self, slot: int) -> int:  # noqa: N802 - flatbuffers' names
        if self.slot is None:
            self.slot = slot
        return 4

    def Get(self, flags: Any, offset: int) -> int:  # noqa: N802
        self.flags = flags
        return 0

    def Vector(self, offset: int) -> int:  # noqa: N802
        self.vector = True
        return 0

    def VectorLen(self, offset: int) -> int:  # noqa: N802
        return 0

    def String(self, offset: int) -> bytes:  # noqa: N802
        self.other = True
        return b""

    def Indirect(self, offset: int) -> int:  # noqa: N802
        self.other = True
        return 0

    def Union(self, table: Any, offset: int) -> None:  # noqa: N802
        self.other = True


def _layout(fb: Any, name: str) -> tuple[str, list, bool] | None:
    """(name, fields, decodable) of one options table, from its generated classes."""
    plain, reader = getattr(fb, name + "T", None), getattr(fb, name, None)
    if plain is None or reader is None:
        return None
    fields, decodable = [], True
    for attr, default in vars(plain()).items():
        accessor = getattr(reader, attr[0].upper() + attr[1:], None)
        probe = _Probe()
        if accessor is not None:
            table = reader.__new__(reader)
            table._tab = probe
            accessor(table, *([0] if len(inspect.signature(accessor).parameters) > 1 else []))
        if accessor is None or probe.other or probe.flags is None:
            decodable = False
            continue
        code = probe.flags.packer_type.format.lstrip("<")
        fields.append([field_name(attr), probe.slot, ("[" if probe.vector else "") + code,
                       default])
    return name, fields, decodable


def derive_tables() -> dict[str, Any]:
    """Every table :mod:`perfsage.graph.schema_tables` holds, from the installed schema."""
    from ai_edge_litert import schema_py_generated as fb

    options = {}
    for union in ("BuiltinOptions", "BuiltinOptions2"):
        found = {code: _layout(fb, name)
                 for code, name in sorted(_enum_names(getattr(fb, union)).items())}
        options[union] = {code: layout for code, layout in found.items() if layout is not None}
    return {
        "BUILTIN_OPERATORS": dict(sorted(_enum_names(fb.BuiltinOperator).items())),
        "DTYPE_NAMES": {k: v.lower() for k, v in sorted(_enum_names(fb.TensorType).items())},
        "ENUMS": {enum: dict(sorted(_enum_names(getattr(fb, enum)).items()))
                  for enum in ("ActivationFunctionType", *_ENUM_OF_FIELD.values())},
        "OPTIONS": options,
    }
