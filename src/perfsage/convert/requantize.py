"""Float32 TFLite models to their int8 version with Google's AI Edge Quantizer.

The quantiser of the PyTorch and ONNX routes (after litert-torch's float conversion), and
of a float ``.tflite`` given as it is, which has lost the framework graph the other
converters start from. AI Edge Quantizer (``ai-edge-quantizer``,
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
    """Full-integer (int8 weights and activations) version of a float TFLite file."""
    return quantize_tflite(path.read_bytes(), given, path)


def quantize_tflite(data: bytes, given, source: object) -> bytes:
    """Full-integer version of a float TFLite model's bytes, calibrated on ``given`` or random.

    The ``static_wi8_ai8`` recipe, with int8 model inputs and outputs where the quantiser
    makes them so (it does for every model in our tests).
    """
    quantizer = require("ai_edge_quantizer.quantizer", _WHAT)
    recipe = require("ai_edge_quantizer.recipe", _WHAT)
    interpreter = require("ai_edge_litert.interpreter", _WHAT)
    with converting(source, CONVERTER):
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
    with converting(source, CONVERTER):
        quant = quantizer.Quantizer(data)
        quant.load_quantization_recipe(recipe.static_wi8_ai8())
        ranges = quant.calibrate({key: [{s.name: a for s, a in zip(specs, sample, strict=True)}
                                        for sample in calib]})
        return bytes(quant.quantize(ranges, enable_progress_report=False).quantized_model)
