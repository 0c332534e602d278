"""The simplest baseline: each metric as a power law of the MAC count, log y = a log MACs + b.

Latency predictors are routinely judged against FLOPs/MACs proxies; a model that cannot
beat this line has learned nothing about the hardware. NumPy least squares, per metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.predictors.base import Predictor
from perfsage.predictors.features import GLOBAL_FEATURES, GraphFeatures
from perfsage.predictors.outputs import decode, encode, output_scaling

_MACS = GLOBAL_FEATURES.index("macs")


def _design(graphs: list[GraphFeatures]) -> np.ndarray:
    """[log1p(MACs), 1] per graph (globals are stored log1p already)."""
    x = np.array([g.globals[_MACS] for g in graphs], dtype=np.float64)
    return np.stack([x, np.ones_like(x)], axis=1)


class MacsLinear(Predictor):
    """Log-log linear regression on MACs, one line per metric."""

    name = "macs-linear"

    def _fit(self, train: Any, val: Any | None) -> None:
        self.scale_ = output_scaling(train.labels)
        z = encode(train.labels, self.scale_).astype(np.float64)
        self.coef_, *_ = np.linalg.lstsq(_design(train.graphs), z, rcond=None)

    def _predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        return decode(_design(graphs) @ self.coef_, self.scale_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"coef": self.coef_}, {"scale": self.scale_}

    def _restore(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.coef_ = tensors["coef"].astype(np.float64)
        self.scale_ = state["scale"]
