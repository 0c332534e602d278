"""Newer ONNX operator versions that onnx2torch 1.5 can convert as an older one.

onnx2torch 1.5.15 registers converters up to opset 17 or 18; PyTorch 2.13's exporter writes
opset 20. Most operator versions since then only widened the types a tensor may have
(float8 in opset 19, bfloat16 and more in 20, int4/uint4 in 21: the ONNX "Changelog" of
each operator), which changes nothing for float32 models, so the older converter applies.
ONNX's own version converter cannot always bridge the gap (it has no adapter from Pad 18
or ConstantOfShape 20 downwards), hence this table.

Two entries changed in meaning, and are converted only where the change is unused (else
refused rather than converted wrongly): Pad 18 added an optional ``axes`` input and 19 the
``wrap`` mode; Resize 18 added ``antialias``, ``axes`` and ``keep_aspect_ratio_policy``
and 19 the ``half_pixel_symmetric`` coordinate mode.
"""

from __future__ import annotations

#: (operator, newer version) -> the version whose onnx2torch converter also serves it.
SAME_AS = {
    ("Identity", 19): 16, ("Identity", 21): 16,
    ("Constant", 19): 13, ("Constant", 21): 13,
    ("ConstantOfShape", 20): 9, ("ConstantOfShape", 21): 9,
    ("Cast", 19): 13, ("Cast", 21): 13,
    ("Reshape", 19): 14, ("Reshape", 21): 14,
    ("Shape", 19): 15, ("Shape", 21): 15,
    ("Size", 19): 13, ("Size", 21): 13,
    ("Equal", 19): 13,
    ("Flatten", 21): 13, ("Transpose", 21): 13,
    ("Squeeze", 21): 13, ("Unsqueeze", 21): 13,
    ("Pad", 18): 13, ("Pad", 19): 13, ("Pad", 21): 13,
    ("Resize", 18): 13, ("Resize", 19): 13,
}


def register(onnx2torch) -> None:
    """Register each newer version under the older version's converter, once."""
    registry = onnx2torch.node_converters.registry
    for (op, newer), older in SAME_AS.items():
        description = registry.OperationDescription("", op, newer)
        if description in registry._CONVERTER_REGISTRY:  # noqa: SLF001 - already known
            continue
        old = registry._CONVERTER_REGISTRY.get(  # noqa: SLF001
            registry.OperationDescription("", op, older))
        if old is not None:
            converter = _guarded(op, old) if op in _UNUSED else old
            registry.add_converter(operation_type=op, version=newer)(converter)


def _pad_unused(node) -> bool:
    return len(node.input_values) <= 3 and node.attributes.get("mode", "constant") != "wrap"


def _resize_unused(node) -> bool:
    attributes = node.attributes
    return (not attributes.get("antialias", 0) and "axes" not in attributes
            and attributes.get("keep_aspect_ratio_policy", "stretch") == "stretch"
            and attributes.get("coordinate_transformation_mode") != "half_pixel_symmetric")


#: Operators whose newer versions changed meaning: a check that the node uses none of it.
_UNUSED = {"Pad": _pad_unused, "Resize": _resize_unused}


def _guarded(op: str, converter):
    def convert(node, graph):
        if not _UNUSED[op](node):
            raise NotImplementedError(f"{op} with an option of ONNX opset 18/19 "
                                      "(axes, wrap, antialias, aspect-ratio policy)")
        return converter(node, graph)

    return convert
