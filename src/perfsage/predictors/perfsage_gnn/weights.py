"""The GNN's weights folder: the shared safetensors + JSON pair, plus its feature checks.

Besides the checks every saved predictor gets (hash, tensor shapes; ``predictors.saved``),
the GNN's config is a model spec (``spec``): it pins the feature version and the operator
vocabulary its embedding rows were trained for, and is sealed by ``spec_sha256``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors import saved
from perfsage.predictors.features import FEATURE_VERSION, OP_TYPES
from perfsage.predictors.perfsage_gnn.spec import SPEC_VERSION, seal

FORMAT = "perfsage-gnn"
WEIGHTS_FILE = saved.WEIGHTS_FILE
CONFIG_FILE = saved.CONFIG_FILE


def save(folder: str | Path, tensors: dict[str, np.ndarray], spec: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``config.json`` (``spec``, sealed) to ``folder``."""
    saved.write_pair(folder, tensors, {"format": FORMAT, "spec_version": SPEC_VERSION,
                                       "feature_version": FEATURE_VERSION,
                                       "op_types": list(OP_TYPES), **spec}, seal=seal)


def load(folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a weights folder; raises WeightsError naming the problem."""
    config = saved.read_config(folder)
    cfg_path = Path(folder) / CONFIG_FILE
    if config["format"] != FORMAT:
        raise WeightsError(f"{cfg_path}: not a PerfSAGE GNN weights config (format "
                           f"{config['format']!r})")
    for field in ("feature_version", "op_types"):
        if field not in config:
            raise WeightsError(f"{cfg_path}: missing field {field!r}")
    if config["feature_version"] != FEATURE_VERSION or config["op_types"] != list(OP_TYPES):
        raise WeightsError(f"{cfg_path}: made for feature version {config['feature_version']}"
                           f"; this PerfSAGE computes version {FEATURE_VERSION}; retrain")
    return saved.read_pair(folder)
