"""A trained PerfSAGE network ready to predict: weights, scaling and the NumPy runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors.features import COST_BASIS, OP_TYPES, UNKNOWN_TYPE, GraphFeatures
from perfsage.predictors.outputs import decode
from perfsage.predictors.perfsage_gnn import runtime, weights


class PerfSAGEModel:
    """PerfSAGE weights for one target, evaluated with NumPy."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        self.tensors = tensors
        self.config = config
        self._node_mu = np.asarray(config["node_mu"], dtype=np.float32)
        self._node_sigma = np.asarray(config["node_sigma"], dtype=np.float32)
        self._global_mu = np.asarray(config["global_mu"], dtype=np.float32)
        self._global_sigma = np.asarray(config["global_sigma"], dtype=np.float32)
        rates = tensors.get("rate_log")
        if rates is not None and len(rates) != len(COST_BASIS) + 1:
            raise WeightsError(f"weights for {config.get('target')} have {len(rates) - 1} cost "
                               f"rates; this PerfSAGE computes {len(COST_BASIS)}; retrain")
        self._additive = self._readout(config, "additive")
        self._peak = self._readout(config, "peak")
        self._type_map = None
        if config["hyper"].get("type_dropout", 0) and config.get("domain"):
            # Types never trained on were learnt only as "unknown" (the type dropout).
            names = [*OP_TYPES, "unknown"]
            seen = set(config["domain"]["op_types"])
            self._type_map = np.array([i if name in seen else UNKNOWN_TYPE
                                       for i, name in enumerate(names)], dtype=np.int64)

    @staticmethod
    def _readout(config: dict[str, Any], kind: str) -> tuple[np.ndarray, ...] | None:
        """(metric indices, mu, sigma) of the metrics a structured readout predicts."""
        names = config.get(kind, [])
        if not names:
            return None
        index = np.array([config["metrics"].index(m) for m in names], dtype=np.int64)
        return (index, np.asarray(config["mu"], dtype=np.float32)[index],
                np.asarray(config["sigma"], dtype=np.float32)[index])

    @classmethod
    def load(cls, folder: str | Path) -> PerfSAGEModel:
        """Load and verify a weights folder (``model.safetensors`` + ``config.json``)."""
        return cls(*weights.load(folder))

    @property
    def target(self) -> str:
        """The hardware target these weights predict."""
        return self.config["target"]

    @property
    def metrics(self) -> list[str]:
        """Metric names, in output order."""
        return list(self.config["metrics"])

    def standardised(self, graphs: list[GraphFeatures]) -> np.ndarray:
        """Raw network outputs (standardised), one row per graph."""
        return runtime.forward(self.tensors, self.config["hyper"]["layers"], graphs,
                               self._node_mu, self._node_sigma, self._global_mu,
                               self._global_sigma, self._additive, self._peak, self._type_map,
                               bool(self.config.get("align")))

    def operator_costs(self, graph: GraphFeatures) -> dict[str, tuple[np.ndarray, float]]:
        """Per additive metric: each operator's cost and the network's overhead.

        They add up to :meth:`predict`'s figure (the additive readout only; ``{}`` for
        weights trained with the pooled one).
        """
        if self._additive is None:
            return {}
        costs, overhead = runtime.operator_costs(
            self.tensors, self.config["hyper"]["layers"], graph, self._node_mu,
            self._node_sigma, self._global_mu, self._global_sigma, self._additive, self._peak,
            self._type_map, bool(self.config.get("align")))
        names = self.config["additive"]
        return {m: (costs[:, j], float(overhead[j])) for j, m in enumerate(names)}

    def outside_training(self, graph: GraphFeatures, op_names: list[str]) -> list[str]:
        """Why ``graph`` is unlike the training data (empty when it is not)."""
        from perfsage.predictors.domain import outside

        return outside(graph, self.config.get("domain"), op_names)

    def predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        """Every metric for every graph, in the target's units."""
        return decode(self.standardised(graphs), self.config)
