"""A float32 ``.tflite`` to its int8 version with Google's AI Edge Quantizer.

A float TFLite model has lost the framework graph the converters quantise, so the
PyTorch and TensorFlow routes cannot start from it. AI Edge Quantizer (``ai-edge-quantizer``,
installed with litert-torch) works on TFLite flatbuffers directly: its
``static_wi8_ai8`` recipe calibrates every activation's range by running the float model
in the LiteRT interpreter on the calibration samples, then writes int8 weights and int8
activations. Operators without an int8 kernel in its policy stay float between a
DEQUANTIZE and a QUANTIZE, and Vela leaves those on the CPU (PerfSAGE's notes say which).

Calibration runs through the model's signature (``serving_default`` for models from the
TensorFlow converter and litert-torch), so a float model without a signature cannot be
requantised: convert it again from its source with ``perfsage convert``. A hybrid model
(int8 weights, float activations) is not a float model either: its original is needed.
"""

from __future__ import annotations

from pathlib import Path

from perfsage.convert.calibration import InputSpec, samples
from perfsage.convert.runner import converting, require

CONVERTER = "AI Edge Quantizer"

_WHAT = "quantising a float .tflite model"


def precision(path: Path) -> str | None:
    """``float32`` or ``hybrid`` as PerfSAGE's precision check calls the model, else None."""
    from perfsage.targets.vela_support import model_notes

    return next((n.kind for n in model_notes(path) if n.kind in ("float32", "hybrid")), None)


def from_float_tflite(path: Path, given) -> bytes:
    """Full-integer (int8 weights and activations) version of a float TFLite model."""
    quantizer = require("ai_edge_quantizer.quantizer", _WHAT)
    recipe = require("ai_edge_quantizer.recipe", _WHAT)
    interpreter = require("ai_edge_litert.interpreter", _WHAT)
    data = path.read_bytes()
    with converting(path, CONVERTER):
        runner_of = interpreter.Interpreter(model_content=data)
        signatures = runner_of.get_signature_list()
        if not signatures:
            raise ValueError("the model has no signature to calibrate through; convert it "
                             "again from its source (perfsage convert) instead")
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        details = runner_of.get_signature_runner(key).get_input_details()
        specs = [InputSpec(name, tuple(int(s) for s in d["shape"]), d["dtype"].__name__)
                 for name, d in details.items()]
    calib = samples(specs, given)
    with converting(path, CONVERTER):
        quant = quantizer.Quantizer(data)
        quant.load_quantization_recipe(recipe.static_wi8_ai8())
        ranges = quant.calibrate({key: [{s.name: a for s, a in zip(specs, sample, strict=True)}
                                        for sample in calib]})
        return bytes(quant.quantize(ranges, enable_progress_report=False).quantized_model)
