"""Converted models, kept by content hash so a model is converted once.

Conversion takes seconds (torch.export, MLIR, calibration); prediction takes milliseconds.
The key covers everything the output depends on: the source's bytes (every file of a
SavedModel folder), its format, the calibration samples, the options and the versions of the
converters, so a new converter or new samples never return a stale model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

#: Distributions whose version is part of every key.
CONVERTER_DISTRIBUTIONS = ("litert-torch", "onnx", "onnx2torch", "torch", "tensorflow-cpu",
                           "ai-edge-quantizer", "ai-edge-litert")

#: Bumped when our own conversion recipe changes (opset handling, quantiser settings).
RECIPE_VERSION = "2"


def cache_dir() -> Path:
    """``$PERFSAGE_CACHE/converted``, else ``~/.cache/perfsage/converted``."""
    root = os.environ.get("PERFSAGE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "perfsage"
    return base / "converted"


def _versions() -> str:
    found = []
    for name in CONVERTER_DISTRIBUTIONS:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=-")
    return ",".join(found)


def _hash_path(digest, path: Path) -> None:
    """Feed a file, or every file of a folder in a fixed order, into ``digest``."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)


def key(source: Path | bytes, fmt: str, options: str, calibration: bytes | None) -> str:
    """The content hash naming a converted model (hex SHA-256)."""
    digest = hashlib.sha256()
    digest.update(f"{RECIPE_VERSION}|{fmt}|{options}|{_versions()}|".encode())
    if isinstance(source, bytes):
        digest.update(source)
    else:
        _hash_path(digest, source)
    digest.update(b"|calibration|")
    digest.update(calibration if calibration is not None else b"random")
    return digest.hexdigest()


def _file(name: str, stem: str) -> Path:
    """``<cache>/<key>/<stem>.tflite``: the key finds it, the stem tells a reader what it is."""
    return cache_dir() / name / f"{stem or 'model'}.tflite"


def lookup(name: str, stem: str) -> Path | None:
    """The cached model of key ``name``, or None."""
    path = _file(name, stem)
    return path if path.is_file() else None


def store(name: str, stem: str, data: bytes) -> Path:
    """Write a converted model under its key, atomically (a killed writer leaves no half file)."""
    target = _file(name, stem)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is readable like any output
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
