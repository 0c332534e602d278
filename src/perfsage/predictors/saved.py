"""A fitted predictor on disk: ``model.safetensors`` plus ``config.json``, never pickle.

The config records the SHA-256 of the weights file and every tensor's shape, so a
truncated, edited or mismatched file fails with one clear line instead of predicting
nonsense. Every predictor saves this way; ``config["format"]`` names which one it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import WeightsError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def write_pair(folder: str | Path, tensors: dict[str, np.ndarray], config: dict[str, Any],
               seal: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Write the tensors (dtypes kept) and the config with the weights' hash, each atomically.

    ``seal``, if given, makes the config that is written from the complete one (the
    weights' hash included), e.g. by adding a hash over it.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    config = {**config, "tensors": {k: list(np.shape(v)) for k, v in sorted(tensors.items())},
              "weights_sha256": hashlib.sha256(tmp.read_bytes()).hexdigest()}
    if seal is not None:
        config = seal(config)
    tmp.replace(folder / WEIGHTS_FILE)
    cfg_tmp = folder / (CONFIG_FILE + ".tmp")
    cfg_tmp.write_text(json.dumps(config, indent=1))
    cfg_tmp.replace(folder / CONFIG_FILE)


def read_config(folder: str | Path) -> dict[str, Any]:
    """The config of a saved predictor; WeightsError when missing, not JSON or untyped.

    The fields every predictor's config has are checked here: ``format`` (a string),
    ``weights_sha256`` (a string) and ``tensors`` (each tensor's shape); the rest belongs to
    the predictor named by ``format``.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: missing (a weights folder holds {CONFIG_FILE} and "
                           f"{WEIGHTS_FILE})")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: not a JSON object (a PerfSAGE weights config is one)")
    for field in ("format", "weights_sha256", "tensors"):
        if field not in config:
            raise WeightsError(f"{path}: missing field {field!r}")
    for field in ("format", "weights_sha256"):
        if not isinstance(config[field], str):
            raise WeightsError(f"{path}: field {field!r} must be a string, not "
                               f"{type(config[field]).__name__}")
    shapes = config["tensors"]
    if not isinstance(shapes, dict) or not all(
            isinstance(s, list) and all(type(d) is int and d >= 0 for d in s)
            for s in shapes.values()):
        raise WeightsError(f"{path}: field 'tensors' must map each tensor's name to its "
                           "shape (a list of sizes)")
    return config


def read_pair(folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a folder written by :func:`write_pair`."""
    folder = Path(folder)
    config = read_config(folder)
    w_path = folder / WEIGHTS_FILE
    if not w_path.is_file():
        raise WeightsError(f"{w_path}: missing (a weights folder holds {CONFIG_FILE} and "
                           f"{WEIGHTS_FILE})")
    data = w_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != config["weights_sha256"]:
        raise WeightsError(f"{w_path}: SHA-256 does not match {CONFIG_FILE} (truncated or "
                           "modified file)")
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise WeightsError(f"{w_path}: unreadable safetensors ({exc})") from None
    if {k: list(v.shape) for k, v in tensors.items()} != config["tensors"]:
        raise WeightsError(f"{w_path}: tensors do not match {CONFIG_FILE}")
    return tensors, config
