r"""Which format a model is in, from its first bytes and its name, without importing a converter.

The TFLite prediction path calls :func:`is_tflite` on every model, so it reads eight bytes
and imports nothing beyond the standard library. A TFLite flatbuffer carries the file
identifier ``TFL3`` at bytes 4-8 (the TFLite schema's ``file_identifier``); an HDF5 file
starts with ``\x89HDF\r\n\x1a\n`` (the HDF5 file-format specification, "Format Signature");
``.keras`` and ``.pt2`` files are zip archives; a SavedModel is a folder holding
``saved_model.pb`` (or ``saved_model.pbtxt``).
"""

from __future__ import annotations

from pathlib import Path

TFLITE = "tflite"
ONNX = "onnx"
PT2 = "pt2"
KERAS = "keras"
H5 = "h5"
SAVED_MODEL = "savedmodel"
TORCH_MODULE = "torch-module"

#: File suffixes of the formats recognised by name, and the format each stands for.
SUFFIXES = {".onnx": ONNX, ".pt2": PT2, ".keras": KERAS, ".h5": H5, ".hdf5": H5}

#: Suffixes of PyTorch files that hold weights or TorchScript, not a program we can convert.
TORCH_PICKLES = (".pt", ".pth", ".bin", ".ckpt")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _head(path: Path, size: int = 8) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError:
        return b""


def is_tflite(path: str | Path) -> bool:
    """True when ``path`` is a file that starts like a TFLite flatbuffer (identifier TFL3)."""
    path = Path(path)
    return path.is_file() and _head(path)[4:8] == b"TFL3"


def detect(path: str | Path) -> str | None:
    """The format of the model at ``path``, or None when it is none we convert.

    None covers a TFLite file, a missing path and anything unrecognised: those go to the
    TFLite reader unchanged, which says what is wrong with them.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SAVED_MODEL
        return None
    if not path.is_file() or is_tflite(path):
        return None
    if _head(path) == _HDF5_SIGNATURE:
        return H5
    return SUFFIXES.get(path.suffix.lower())
