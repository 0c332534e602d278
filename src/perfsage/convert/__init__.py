"""Models in other formats to int8 TFLite with the official converters (``perfsage[convert]``).

PerfSAGE predicts and measures int8 TFLite models, the form Arm Vela and TensorFlow Lite
Micro take. Everything else is converted first, once, and kept by content hash
(:mod:`perfsage.convert.cache`):

* ``torch.nn.Module`` (API) and ``.pt2`` (``torch.export``) files: litert-torch to float
  TFLite, then AI Edge Quantizer's full-integer recipe (:mod:`~perfsage.convert.from_torch`);
* ``.onnx``: onnx2torch, then the same (:mod:`~perfsage.convert.from_onnx`);
* ``.keras``, ``.h5`` and SavedModel folders: the TensorFlow Lite converter with full-integer
  post-training quantisation (:mod:`~perfsage.convert.from_tensorflow`).

Each module's docstring says why its converter was picked. This package imports only the
standard library and NumPy until a conversion is asked for, and the TFLite prediction path
never asks: :func:`as_tflite` returns a ``.tflite`` path untouched after reading eight bytes.
"""

from __future__ import annotations

from pathlib import Path

from perfsage.convert import formats
from perfsage.convert.formats import detect, is_tflite
from perfsage.errors import ConversionError

__all__ = ["as_tflite", "convert_bytes", "detect", "is_tflite"]


def _calibration(value) -> tuple[list | None, bytes | None]:
    """The user's calibration arrays (from a path, an array or a list of arrays) and their key."""
    if value is None:
        return None, None
    from perfsage.convert import calibration

    if isinstance(value, str | Path):
        arrays = calibration.load(value)
    else:
        import numpy as np

        arrays = [np.asarray(a) for a in value] if isinstance(value, list | tuple) \
            else [np.asarray(value)]
    return arrays, calibration.digest_bytes(arrays)


def convert_bytes(model, *, calibration=None, example_inputs=None) -> bytes:
    """Convert a model to int8 TFLite bytes, without the cache.

    Args:
        model: a path (``.onnx``, ``.pt2``, ``.keras``, ``.h5``, a SavedModel folder) or a
            ``torch.nn.Module``.
        calibration: samples for post-training quantisation: a ``.npy``/``.npz`` path, an
            array, or one array per input; None draws random samples.
        example_inputs: for a module, the tensor(s) it is called with.

    Raises:
        ConversionError: the format is not one we convert, or its converter failed.
        MissingExtraError: ``perfsage[convert]`` is not installed.
        UsageError: the calibration samples do not fit the model.
    """
    given, _ = _calibration(calibration)
    fmt = _format(model, example_inputs)
    return _convert(model, fmt, given, example_inputs)


def as_tflite(model, *, calibration=None, example_inputs=None, quantize: bool = False) -> Path:
    """A TFLite path for ``model``: the path itself for a TFLite file, else its conversion.

    With ``quantize``, a float32 ``.tflite`` is replaced by its int8 version
    (:mod:`perfsage.convert.requantize`); an int8 one is returned as it is.

    Anything :func:`detect` does not recognise (a missing file, a corrupt one) is returned
    unchanged, so the TFLite reader reports it as it always has. Converted models are cached
    as ``$PERFSAGE_CACHE/converted/KEY/NAME.tflite`` (default cache
    ``~/.cache/perfsage``), NAME being the source's file name and KEY a hash of
    the model's bytes, the calibration samples and the converters' versions.

    Args:
        model: a path or a ``torch.nn.Module`` (then ``example_inputs`` is required).
        calibration: as for :func:`convert_bytes`.
        example_inputs: as for :func:`convert_bytes`.
        quantize: also replace a float32 ``.tflite`` by its int8 version.

    Raises:
        ConversionError, MissingExtraError, UsageError: as for :func:`convert_bytes`.
    """
    if isinstance(model, str | Path):
        path = Path(model)
        _refuse_pickle(path)
        if quantize and is_tflite(path):
            return _requantized(path, calibration)
        if detect(path) is None:
            return path
    from perfsage.convert import cache

    given, calibration_key = _calibration(calibration)
    fmt = _format(model, example_inputs)
    source = _module_key(model, example_inputs) if fmt == formats.TORCH_MODULE else Path(model)
    name = cache.key(source, fmt, "", calibration_key)
    stem = type(model).__name__ if fmt == formats.TORCH_MODULE else Path(model).name
    found = cache.lookup(name, stem)
    if found is not None:
        return found
    return cache.store(name, stem, _convert(model, fmt, given, example_inputs))


def _requantized(path: Path, calibration) -> Path:
    """The int8 version of a float .tflite (cached), or the path of an int8 one."""
    from perfsage.convert import cache
    from perfsage.convert.requantize import from_float_tflite, precision

    found = precision(path)
    if found is None:
        return path
    if found == "hybrid":
        raise ConversionError(path, "a hybrid model (int8 weights, float activations) cannot "
                                    "be requantised: convert the original float model with "
                                    "perfsage convert")
    given, calibration_key = _calibration(calibration)
    name = cache.key(path, formats.TFLITE, "requantize", calibration_key)
    found = cache.lookup(name, path.name)
    if found is not None:
        return found
    return cache.store(name, path.name, from_float_tflite(path, given))


def _format(model, example_inputs) -> str:
    if isinstance(model, str | Path):
        _refuse_pickle(Path(model))
        fmt = detect(model)
        if fmt is None:
            raise ConversionError(model, "not a format PerfSAGE converts; give .tflite, .onnx, "
                                         ".pt2, .keras, .h5 or a SavedModel folder")
        return fmt
    if type(model).__module__.split(".")[0] == "torch" or hasattr(model, "state_dict"):
        if example_inputs is None:
            raise ConversionError(type(model).__name__, "a torch.nn.Module needs "
                                  "example_inputs=(tensor, ...) of the shapes to convert for")
        return formats.TORCH_MODULE
    raise ConversionError(type(model).__name__, "not a model PerfSAGE converts; give a path "
                                                "or a torch.nn.Module")


def _refuse_pickle(path: Path) -> None:
    """A PyTorch weights/TorchScript file: say what to save instead."""
    if path.is_file() and path.suffix.lower() in formats.TORCH_PICKLES:
        raise ConversionError(path, "a .pt/.pth file holds weights or TorchScript, not a "
                                    "program PerfSAGE can convert; save the model with "
                                    "torch.export.save(torch.export.export(model, args), "
                                    "'model.pt2') or export it to ONNX")


def _module_key(module, example_inputs) -> bytes:
    """Bytes that identify a module: its classes' source, parameters, buffers, input shapes."""
    import inspect

    import numpy as np
    import torch

    inputs = (example_inputs,) if torch.is_tensor(example_inputs) else tuple(example_inputs)
    classes = sorted({type(m) for m in module.modules()},
                     key=lambda c: f"{c.__module__}.{c.__qualname__}")
    parts = [repr(module).encode()]
    for cls in classes:
        try:
            parts.append(inspect.getsource(cls).encode())
        except (OSError, TypeError):  # defined in a notebook or C: its name stands for it
            parts.append(f"{cls.__module__}.{cls.__qualname__}".encode())
    parts += [f"{t.dtype}{tuple(t.shape)}".encode() for t in inputs]
    for name, tensor in module.state_dict().items():
        parts.append(name.encode())
        parts.append(np.ascontiguousarray(tensor.detach().cpu().float().numpy()).tobytes())
    return b"|".join(parts)


def _convert(model, fmt: str, given, example_inputs) -> bytes:
    """Dispatch to the converter of ``fmt``; each module imports its converter lazily."""
    if fmt == formats.TORCH_MODULE:
        from perfsage.convert.from_torch import from_module

        return from_module(model, example_inputs, given)
    path = Path(model)
    if fmt == formats.PT2:
        from perfsage.convert.from_torch import from_pt2

        return from_pt2(path, given)
    if fmt == formats.ONNX:
        from perfsage.convert.from_onnx import from_onnx

        return from_onnx(path, given)
    if fmt in (formats.KERAS, formats.H5):
        from perfsage.convert.from_tensorflow import from_keras

        return from_keras(path, given)
    from perfsage.convert.from_tensorflow import from_saved_model

    return from_saved_model(path, given)
