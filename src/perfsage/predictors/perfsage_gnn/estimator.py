"""The PerfSAGE GNN behind the common ``Predictor`` interface (fit / predict / save / load).

Training runs ``train.fit`` (PyTorch Geometric) in a work folder; prediction runs the NumPy
runtime. Saved folders are the same weights folders ``perfsage train`` writes and the
package ships.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.predictors.base import Predictor
from perfsage.predictors.features import GraphFeatures
from perfsage.predictors.perfsage_gnn import weights
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel
from perfsage.predictors.perfsage_gnn.train import Hyper


class PerfSAGE(Predictor):
    """GraphSAGE over the operator graph with a sum/mean/max readout (Chai et al., 2023)."""

    name = "perfsage-gnn"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The ``train.Hyper`` fields and their defaults."""
        return {f.name: f.default for f in fields(Hyper)}

    def _fit(self, train: Any, val: Any | None) -> None:
        from perfsage.predictors.perfsage_gnn.train import fit

        if val is None or len(val) == 0:
            val = train
        with tempfile.TemporaryDirectory(prefix="perfsage-gnn-") as work:
            fit(train, val, self.target_, work, Hyper(**self.params))
            self.model_ = PerfSAGEModel.load(work)

    def _predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        return self.model_.predict(graphs)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        config = {k: v for k, v in self.model_.config.items()
                  if k not in ("tensors", "weights_sha256", "spec_sha256")}
        return self.model_.tensors, config

    def _restore(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.model_ = PerfSAGEModel(tensors, state)

    def save(self, folder: str | Path) -> Path:
        """Write a weights folder, the format ``perfsage predict --weights`` reads."""
        self._check_fitted()
        weights.save(folder, *self._state())
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> PerfSAGE:
        """Read a weights folder (shipped, from ``perfsage train`` or from :meth:`save`)."""
        tensors, config = weights.load(folder)
        known = cls.defaults()
        predictor = cls(**{k: v for k, v in config.get("hyper", {}).items() if k in known})
        predictor.target_, predictor.metrics_ = config["target"], list(config["metrics"])
        predictor._restore(tensors, config)
        return predictor
