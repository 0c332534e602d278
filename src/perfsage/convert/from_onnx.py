"""ONNX models to int8 TFLite: onnx2torch to a PyTorch module, then litert-torch.

Picked on evidence, in this environment (torch 2.13, TensorFlow 2.21, NumPy 2):

* onnx2tf, the usual ONNX-to-TFLite tool, pins TensorFlow 2.19, NumPy 1.26 and
  ai-edge-litert 2.1 in every release on PyPI (1.29.x), so it cannot be installed beside
  PerfSAGE's ai-edge-litert 2.3; onnx-tf was last released in 2022 for TensorFlow 2.10.
* onnx2torch rebuilds the graph as a ``torch.fx`` module of ordinary PyTorch layers, which
  ``torch.export`` and litert-torch then treat exactly like a PyTorch user's own network
  (:mod:`perfsage.convert.from_torch`): one quantiser and one converter for both formats.

Two preparations make current exporters' files readable by onnx2torch 1.5, whose converters
stop at opset 17 for some operators: the model is converted down to opset 17 with ONNX's
own version converter, and ``Identity`` nodes that merely rename an initializer (PyTorch's
exporter writes them for shared constants) are replaced by the initializer, since
onnx2torch reads convolution weights from initializers only.

onnx2torch imports torchvision for two operators (NonMaxSuppression, RoiAlign). PyPI's
torchvision fails to import beside a CPU build of torch ("operator torchvision::nms does
not exist"); when it does, a stand-in module lets onnx2torch load and a model that uses
either operator fails with a one-line message instead.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from perfsage.convert.calibration import InputSpec, fixed_shape
from perfsage.convert.from_torch import quantize_and_convert
from perfsage.convert.runner import converting, quiet, require
from perfsage.errors import MissingExtraError

#: The highest opset onnx2torch 1.5 converts every common operator at.
OPSET = 17

_WHAT = "converting ONNX models"


def _onnx2torch():
    """Import onnx2torch, standing in for torchvision only where torchvision cannot import."""
    if sys.modules.get("onnx2torch") is not None:
        return sys.modules["onnx2torch"]
    require("torch", _WHAT)
    try:  # absent: the extra's line, before any import (torchvision's trouble) is tried
        missing = importlib.util.find_spec("onnx2torch") is None
    except (ValueError, AttributeError):  # None in sys.modules: blocked on purpose
        missing = True
    if missing:
        raise MissingExtraError(f"{_WHAT} (it imports onnx2torch)", "convert")
    stand_in = False
    try:
        with quiet():
            import torchvision  # noqa: F401 - only whether it imports matters
    except Exception:  # a ModuleNotFoundError or torchvision's own RuntimeError
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = _torchvision_stand_in()
        stand_in = True
    try:
        return require("onnx2torch", _WHAT)
    finally:
        if stand_in:  # onnx2torch holds its references; nobody else should find it
            sys.modules.pop("torchvision", None)
            sys.modules.pop("torchvision.ops", None)


def _torchvision_stand_in():
    def unavailable(*_args, **_kwargs):
        raise RuntimeError("this operator (NonMaxSuppression or RoiAlign) needs torchvision, "
                           "which does not import beside this torch build")

    package, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = unavailable
    package.ops = ops
    return package, ops


def prepare(model):
    """Opset 17 and initializers in place of Identity nodes that only rename them."""
    onnx = require("onnx", _WHAT)
    version_converter = require("onnx.version_converter", _WHAT)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset > OPSET:
        model = version_converter.convert_version(model, OPSET)
    initializers = {t.name: t for t in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
            initializers[copy.name] = copy
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def input_specs(model) -> list[InputSpec]:
    """The graph inputs that are not initializers, dynamic sizes fixed to 1."""
    helper = require("onnx.helper", _WHAT)
    constants = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        specs.append(InputSpec(value.name, fixed_shape(dims), str(dtype)))
    return specs


def from_onnx(path: Path, given) -> bytes:
    """Convert an ``.onnx`` file to int8 TFLite bytes."""
    onnx = require("onnx", _WHAT)
    onnx2torch = _onnx2torch()
    torch = require("torch", _WHAT)
    with converting(path, "onnx2torch"):
        model = prepare(onnx.load(str(path)))
        specs = input_specs(model)
        module = onnx2torch.convert(model).eval()
        example_inputs = tuple(torch.zeros(s.shape, dtype=getattr(torch, s.dtype))
                               for s in specs)
    with converting(path, "torch.export"):
        graph = torch.export.export(module, example_inputs).module()
    return quantize_and_convert(graph, example_inputs, given, path, specs)
