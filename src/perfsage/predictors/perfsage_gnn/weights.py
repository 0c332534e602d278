"""Weights as safetensors plus a JSON config: never pickle, always checked before use.

The config records the SHA-256 of the weights file, the tensor names and shapes, and the
feature version, so a truncated, edited or mismatched file fails with one clear line
instead of predicting nonsense.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors.features import FEATURE_VERSION, OP_TYPES

FORMAT = "perfsage-gnn"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save(folder: str | Path, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``config.json`` (with the weights' hash) to ``folder``."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(tmp))
    data = tmp.read_bytes()
    config = {**config, "format": FORMAT, "feature_version": FEATURE_VERSION,
              "op_types": list(OP_TYPES),
              "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())},
              "weights_sha256": hashlib.sha256(data).hexdigest()}
    tmp.replace(folder / WEIGHTS_FILE)
    cfg_tmp = folder / (CONFIG_FILE + ".tmp")
    cfg_tmp.write_text(json.dumps(config, indent=1))
    cfg_tmp.replace(folder / CONFIG_FILE)


def load(folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a weights folder; raises WeightsError naming the problem."""
    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (cfg_path, w_path):
        if not path.is_file():
            raise WeightsError(f"{path}: missing (a weights folder holds {CONFIG_FILE} and "
                               f"{WEIGHTS_FILE})")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise WeightsError(f"{cfg_path}: not a PerfSAGE weights config")
    if config.get("feature_version") != FEATURE_VERSION or config.get("op_types") != list(OP_TYPES):
        raise WeightsError(f"{cfg_path}: made for feature version {config.get('feature_version')}"
                           f"; this PerfSAGE computes version {FEATURE_VERSION}; retrain")
    data = w_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != config.get("weights_sha256"):
        raise WeightsError(f"{w_path}: SHA-256 does not match {CONFIG_FILE} (truncated or "
                           "modified file)")
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise WeightsError(f"{w_path}: unreadable safetensors ({exc})") from None
    expected = config.get("tensors", {})
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if shapes != expected:
        raise WeightsError(f"{w_path}: tensors do not match {CONFIG_FILE}")
    return tensors, config
