"""PyTorch programs (``torch.nn.Module``, ``.pt2`` files) to int8 TFLite with litert-torch.

litert-torch (formerly ai-edge-torch) is Google's converter from ``torch.export`` programs
to LiteRT/TFLite, with PyTorch 2 Export (PT2E) post-training quantisation: observers are
inserted into the exported graph (``prepare_pt2e``), the calibration samples run through
it, and ``convert_pt2e`` turns the ranges into quantise/dequantise pairs that the converter
lowers to int8 TFLite operators. Its symmetric per-channel configuration
(``get_symmetric_quantization_config(is_per_channel=True)``) gives int8 weights and
activations, int8 inputs and outputs, and int32 biases: the scheme Arm Vela compiles for
the Ethos-U ("Vela supports 8-bit and 16-bit integer quantised TFLite models", Vela's
README). It needs no TensorFlow and runs beside torch 2.13 (litert-torch 0.10 asks for
torch < 2.15), where the TensorFlow route from PyTorch would go through ONNX and onnx2tf,
whose releases pin TensorFlow 2.19 and NumPy 1.26 and cannot share this environment.

The converted model keeps PyTorch's layout: an NCHW image input starts with a TRANSPOSE to
the NHWC layout TFLite computes in, as it would on the device given the same program.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perfsage.convert.calibration import InputSpec, fixed_shape, samples
from perfsage.convert.runner import converting, require

CONVERTER = "litert-torch"


def _torch():
    return require("torch", "converting PyTorch models")


def specs_of(example_inputs) -> list[InputSpec]:
    """The input specs of a tuple of example tensors."""
    return [InputSpec(f"input_{i}", tuple(t.shape), str(t.dtype).removeprefix("torch."))
            for i, t in enumerate(example_inputs)]


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
    with converting(source or type(module).__name__, "torch.export"):
        graph = torch.export.export(module.eval(), example_inputs).module()
    return quantize_and_convert(graph, example_inputs, given, source or type(module).__name__)


def from_pt2(path: Path, given) -> bytes:
    """Convert a ``torch.export`` program saved with ``torch.export.save``."""
    torch = _torch()
    with converting(path, "torch.export.load"):
        program = torch.export.load(str(path))
        example_inputs = _example_inputs(torch, program)
        graph = program.module()
    return quantize_and_convert(graph, example_inputs, given, path)


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


def quantize_and_convert(graph, example_inputs: tuple, given, source: object,
                         specs: list[InputSpec] | None = None) -> bytes:
    """PT2E int8 quantisation of an exported graph module, then litert-torch to TFLite.

    ``specs`` names the inputs in calibration messages (default: ``input_0``, ...).
    """
    torch = _torch()
    litert_torch = require("litert_torch", "converting PyTorch models")
    pt2e = require("litert_torch.quantize.pt2e_quantizer", "converting PyTorch models")
    quant_config = require("litert_torch.quantize.quant_config", "converting PyTorch models")
    quantize_pt2e = require("torchao.quantization.pt2e.quantize_pt2e",
                            "converting PyTorch models")
    calib = samples(specs or specs_of(example_inputs), given)
    with converting(source, CONVERTER):
        quantizer = pt2e.PT2EQuantizer().set_global(
            pt2e.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for sample in calib:
                prepared(*(torch.from_numpy(np.ascontiguousarray(a)) for a in sample))
        quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(quantized, example_inputs,
                                    quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
        return bytes(edge.model_content())
