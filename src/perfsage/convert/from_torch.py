"""PyTorch programs (``torch.nn.Module``, ``.pt2`` files) to int8 TFLite.

Two official tools, picked on evidence:

* **litert-torch** (formerly ai-edge-torch), Google's converter from ``torch.export``
  programs to LiteRT/TFLite, converts the float program. It needs no TensorFlow and runs
  beside torch 2.13 (litert-torch 0.10 asks for torch < 2.15); the TensorFlow route from
  PyTorch would go through ONNX and onnx2tf, whose releases pin TensorFlow 2.19 and NumPy
  1.26 and cannot share this environment.
* **AI Edge Quantizer** (installed with litert-torch) then quantises the float TFLite model
  to int8 weights and activations (:mod:`perfsage.convert.requantize`). litert-torch's own
  PT2E quantiser was tried first: it finds additions and poolings by the PyTorch function
  that made each node, which a non-strict ``torch.export`` (the default, and most ``.pt2``
  files) does not record, and it has no int8 annotation for LayerNorm, batched matmul or
  softmax. On a small ResNet its ``.pt2`` conversion left the residual ADD and the pooling
  in float (5 operators Vela leaves on the CPU), and on a transformer block 32 of 50
  operators; AI Edge Quantizer made both fully int8 (0 CPU operators in Vela on
  ethos-u55-128; the ResNet 0.373 ms against 0.367 ms with the float islands on the CPU).

The converted model keeps PyTorch's layout: an NCHW image input starts with a TRANSPOSE to
the NHWC layout TFLite computes in, as it would on the device given the same program.
"""

from __future__ import annotations

from pathlib import Path

from perfsage.convert.calibration import fixed_shape
from perfsage.convert.requantize import quantize_tflite
from perfsage.convert.runner import converting, require

CONVERTER = "litert-torch"

_WHAT = "converting PyTorch models"


def _torch():
    return require("torch", _WHAT)


def from_module(module, example_inputs, given, source: object = None) -> bytes:
    """Convert a ``torch.nn.Module`` called as ``module(*example_inputs)``.

    Args:
        module: the network; it is put in eval mode.
        example_inputs: a tensor or a tuple of tensors of the shapes to convert for.
        given: the user's calibration arrays (one per input) or None for random samples.
        source: what to name in error messages.
    """
    torch = _torch()
    example_inputs = (example_inputs,) if torch.is_tensor(example_inputs) else \
        tuple(example_inputs)
    return int8_tflite(module.eval(), example_inputs, given, source or type(module).__name__)


def from_pt2(path: Path, given) -> bytes:
    """Convert a ``torch.export`` program saved with ``torch.export.save``."""
    torch = _torch()
    with converting(path, "torch.export.load", "read"):
        program = torch.export.load(str(path))
        example_inputs = _example_inputs(torch, program)
        module = program.module()
    return int8_tflite(module, example_inputs, given, path)


def _example_inputs(torch, program) -> tuple:
    """The program's saved example inputs, else zeros shaped like its placeholders."""
    saved = getattr(program, "example_inputs", None)
    if saved and saved[0] and not saved[1]:
        return tuple(saved[0])
    user = set(program.graph_signature.user_inputs)
    tensors = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            fake = node.meta["val"]
            tensors.append(torch.zeros(fixed_shape(fake.shape), dtype=fake.dtype))
    return tuple(tensors)


def int8_tflite(module, example_inputs: tuple, given, source: object) -> bytes:
    """litert-torch's float TFLite model of ``module``, quantised by AI Edge Quantizer."""
    litert_torch = require("litert_torch", _WHAT)
    with converting(source, CONVERTER):
        float_model = bytes(litert_torch.convert(module, example_inputs).model_content())
    return quantize_tflite(float_model, given, source)
