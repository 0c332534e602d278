"""ONNX models to int8 TFLite: onnx2torch to a PyTorch module, then the PyTorch route.

Picked on evidence, in this environment (torch 2.13, TensorFlow 2.21, NumPy 2):

* onnx2tf, the usual ONNX-to-TFLite tool, pins TensorFlow 2.19, NumPy 1.26 and
  ai-edge-litert 2.1 in every release on PyPI (1.29.x), so it cannot be installed beside
  PerfSAGE's ai-edge-litert 2.3; onnx-tf was last released in 2022 for TensorFlow 2.10.
* onnx2torch rebuilds the graph as a ``torch.fx`` module of ordinary PyTorch layers, which
  litert-torch and AI Edge Quantizer then treat exactly like a PyTorch user's own network
  (:mod:`perfsage.convert.from_torch`): one converter and one quantiser for both formats.

Two preparations make current exporters' files readable by onnx2torch 1.5, whose converters
stop at opset 17 for some operators: nodes of constant inputs (``Constant``, ``Identity``
renaming a shared weight, ``ConstantOfShape`` of a fixed shape) are folded into
initializers with ONNX's reference evaluator, since onnx2torch reads convolution weights
from initializers only; then the model is converted down to opset 17 with ONNX's own
version converter (where it has an adapter for every operator; else it is kept as it is,
and the operators whose newer versions only added types are converted as their older
version: :mod:`perfsage.convert.onnx_opsets`).

onnx2torch keeps ONNX's shape arguments as tensors (Reshape's shape, Squeeze's and
Unsqueeze's axes, Resize's scales, Expand's shape, Tile's repeats) and reads them at run
time, which ``torch.export`` cannot trace ("data-dependent expression"). A TFLite model has
static shapes anyway, so after onnx2torch the shapes are propagated once through the
module (``torch.fx``'s ShapeProp) with the example inputs, and those operators become
their static PyTorch equivalents (:func:`static_shapes`); the ``Shape``/``Gather``/
``Concat`` chains that computed the arguments are then dead and removed. Pad and Slice,
whose arguments are values rather than shapes, become ``F.pad`` and indexing when those
arguments are constant.

onnx2torch imports torchvision for two operators (NonMaxSuppression, RoiAlign). PyPI's
torchvision fails to import beside a CPU build of torch ("operator torchvision::nms does
not exist"); when it does, a stand-in module lets onnx2torch load and a model that uses
either operator fails with a one-line message instead.
"""

from __future__ import annotations

import importlib.util
import operator
import sys
import types
from pathlib import Path

from perfsage.convert.calibration import InputSpec, fixed_shape
from perfsage.convert.from_torch import int8_tflite
from perfsage.convert.onnx_opsets import register as register_newer_opsets
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
        onnx2torch = require("onnx2torch", _WHAT)
        register_newer_opsets(onnx2torch)
        return onnx2torch
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


#: Operators never folded though their inputs are constant: their output is random.
_RANDOM = {"RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"}


def prepare(model):
    """Constant subgraphs folded, then opset 17 where ONNX's version converter can reach it."""
    version_converter = require("onnx.version_converter", _WHAT)
    model = fold_constants(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset > OPSET:
        try:
            model = version_converter.convert_version(model, OPSET)
        except RuntimeError:  # no adapter for some operator: onnx2torch may still know it
            pass
    return model


def fold_constants(model):
    """Every node whose inputs are all constant replaced by initializers of its outputs.

    Evaluated with ONNX's reference implementation (``onnx.reference``). Exporters leave
    such nodes behind (``Identity`` renaming a shared weight, ``ConstantOfShape`` of a
    constant shape, ``Constant`` nodes); onnx2torch reads weights from initializers only,
    and ONNX's version converter has no adapter for some of them.
    """
    numpy_helper = require("onnx.numpy_helper", _WHAT)
    reference = require("onnx.reference", _WHAT)
    graph = model.graph
    known = {t.name: t for t in graph.initializer}
    opsets = {o.domain or "": o.version for o in model.opset_import}
    kept = []
    for node in graph.node:
        constant = node.op_type == "Constant" or (
            node.input and all(i == "" or i in known for i in node.input)
            and node.domain in ("", "ai.onnx") and node.op_type not in _RANDOM
            and not any(a.g.node or a.graphs for a in node.attribute))
        if not constant:
            kept.append(node)
            continue
        try:
            feeds = {i: numpy_helper.to_array(known[i]) for i in node.input if i}
            values = reference.ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
        except Exception:  # the reference cannot run it: onnx2torch will, at run time
            kept.append(node)
            continue
        for name, value in zip(node.output, values, strict=False):
            tensor = numpy_helper.from_array(value, name)
            graph.initializer.append(tensor)
            known[name] = tensor
    del graph.node[:]
    graph.node.extend(kept)
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
    with converting(path, "onnx.load", "read"):
        loaded = onnx.load(str(path))
    with converting(path, "onnx2torch"):
        model = prepare(loaded)
        specs = input_specs(model)
        module = onnx2torch.convert(model).eval()
        example_inputs = tuple(torch.zeros(s.shape, dtype=getattr(torch, s.dtype))
                               for s in specs)
        module = static_shapes(module, example_inputs)
    return int8_tflite(module, example_inputs, given, path)


#: ONNX interpolation modes as ``torch.nn.functional.interpolate`` names them, by spatial rank.
_INTERPOLATE = {"nearest": ("nearest", "nearest", "nearest"),
                "linear": ("linear", "bilinear", "trilinear"),
                "cubic": (None, "bicubic", None)}


def static_shapes(module, example_inputs: tuple):
    """Shape-taking operators with the shapes and constants they take for ``example_inputs``.

    Each becomes a call with Python integers (``torch.reshape``, ``interpolate`` with an
    output ``size``, ``expand``, ``repeat``) that ``torch.export`` traces statically.
    """
    torch = require("torch", _WHAT)
    shape_prop = require("torch.fx.passes.shape_prop", _WHAT)
    shape_prop.ShapeProp(module).propagate(*example_inputs)
    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        kind = type(module.get_submodule(node.target)).__name__
        replacement = _static_call(torch, module.get_submodule(node.target), kind,
                                   _with_constants(module, node))
        if replacement is None:
            continue
        with graph.inserting_after(node):
            new = graph.call_function(*replacement)
        new.meta = dict(node.meta)  # its shape, for the operators that read it next
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    graph.eliminate_dead_code()
    module.delete_all_unused_submodules()
    module.recompile()
    return module


#: onnx2torch modules that only reshape, reading their shape or axes from a tensor.
_RESHAPES = {"OnnxReshape", "OnnxSqueezeDynamicAxes", "OnnxUnsqueezeDynamicAxes"}


def _static_call(torch, inner, kind: str, node):
    """(function, args) computing ``node`` with static shapes, or None to keep it."""
    meta = node.meta.get("tensor_meta")
    source = node.args[0] if node.args else None
    if meta is None or not hasattr(source, "meta") or "tensor_meta" not in source.meta:
        return None
    out_shape, in_shape = tuple(meta.shape), tuple(source.meta["tensor_meta"].shape)
    if kind in _RESHAPES:
        return torch.reshape, (source, out_shape)
    if kind == "OnnxExpand":
        return torch.Tensor.expand, (source, out_shape)
    if kind == "OnnxTile" and len(in_shape) == len(out_shape):
        return torch.Tensor.repeat, (source, tuple(o // max(i, 1) for o, i in
                                                   zip(out_shape, in_shape, strict=True)))
    if kind == "OnnxPadDynamic":
        return _static_pad(torch, inner, node, len(in_shape))
    if kind == "OnnxSlice":
        return _static_slice(node, len(in_shape))
    if kind in ("OnnxResize", "OnnxResizeV10"):
        resize = getattr(inner, "_resize", inner)
        modes = _INTERPOLATE.get(resize.onnx_mode)
        mode = modes[len(out_shape) - 3] if modes and 3 <= len(out_shape) <= 5 else None
        if mode is None or out_shape[:2] != in_shape[:2]:
            return None
        align = resize.align_corners if mode not in ("nearest",) else None
        return torch.nn.functional.interpolate, (source, out_shape[2:], None, mode, align)
    return None


def _with_constants(module, node):
    """``node``, with ``node.meta["constants"]``: the value of each argument that is constant."""
    values = {}
    for i, arg in enumerate(node.args):
        if getattr(arg, "op", None) == "get_attr":
            value = module
            for part in arg.target.split("."):
                value = getattr(value, part)
            values[i] = value.detach().cpu().numpy()
    node.meta["constants"] = values
    return node


def _static_pad(torch, inner, node, rank: int):
    """ONNX Pad with constant pads: ``F.pad`` with ONNX's [begins..., ends...] reordered."""
    constants = node.meta["constants"]
    if 1 not in constants or len(node.args) > 2 and 2 not in constants:
        return None
    pads = [int(p) for p in constants[1].ravel()]
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        return None
    torch_pads = []
    for dim in reversed(range(rank)):  # F.pad starts from the last dimension
        torch_pads += [pads[dim], pads[rank + dim]]
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:  # reflect/replicate need this
        torch_pads = torch_pads[:-2]
    value = float(constants[2].ravel()[0]) if 2 in constants and constants[2].size else 0.0
    return torch.nn.functional.pad, (node.args[0], tuple(torch_pads), inner.mode, value)


def _static_slice(node, rank: int):
    """ONNX Slice with constant starts, ends, axes and positive steps: Python indexing."""
    constants = node.meta["constants"]
    if any(i not in constants for i in range(1, len(node.args))) or len(node.args) < 3:
        return None
    starts, ends = constants[1].ravel(), constants[2].ravel()
    axes = constants[3].ravel() if 3 in constants else range(len(starts))
    steps = constants[4].ravel() if 4 in constants else [1] * len(starts)
    index = [slice(None)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step < 1:
            return None
        index[int(axis) % rank] = slice(int(start), int(end), int(step))
    return operator.getitem, (node.args[0], tuple(index))
