"""A trained PerfSAGE network ready to predict: weights, scaling and the NumPy runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfsage.predictors.features import OP_TYPES, UNKNOWN_TYPE, GraphFeatures
from perfsage.predictors.outputs import decode
from perfsage.predictors.perfsage_gnn import runtime, weights
from perfsage.predictors.perfsage_gnn.config import GNNConfig


class PerfSAGEModel:
    """PerfSAGE weights for one target, evaluated with NumPy.

    ``config`` is the weights' config as saved (what :meth:`save`-like callers write back);
    ``spec`` is the same, parsed and checked against the tensors, and is what predicting
    reads. A config that does not fit raises WeightsError naming ``source`` and the field.
    """

    def __init__(self, tensors: dict[str, np.ndarray], config: dict[str, Any],
                 source: str = "weights config") -> None:
        self.tensors = tensors
        self.config = config
        self.spec = spec = GNNConfig.parse(config, tensors, source)
        self._node_mu = np.asarray(spec.node_mu, dtype=np.float32)
        self._node_sigma = np.asarray(spec.node_sigma, dtype=np.float32)
        self._global_mu = np.asarray(spec.global_mu, dtype=np.float32)
        self._global_sigma = np.asarray(spec.global_sigma, dtype=np.float32)
        self._scale = spec.scale
        self._additive = self._readout(spec, spec.additive)
        self._peak = self._readout(spec, spec.peak)
        self._type_map = None
        if spec.type_dropout and spec.domain:
            # Types never trained on were learnt only as "unknown" (the type dropout).
            names = [*OP_TYPES, "unknown"]
            seen = set(spec.domain["op_types"])
            self._type_map = np.array([i if name in seen else UNKNOWN_TYPE
                                       for i, name in enumerate(names)], dtype=np.int64)

    @staticmethod
    def _readout(spec: GNNConfig, names: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
        """(metric indices, mu, sigma) of the metrics a structured readout predicts."""
        if not names:
            return None
        index = np.array([spec.metrics.index(m) for m in names], dtype=np.int64)
        return (index, np.asarray(spec.mu, dtype=np.float32)[index],
                np.asarray(spec.sigma, dtype=np.float32)[index])

    @classmethod
    def load(cls, folder: str | Path) -> PerfSAGEModel:
        """Load and verify a weights folder (``model.safetensors`` + ``config.json``)."""
        return cls(*weights.load(folder), source=str(Path(folder) / weights.CONFIG_FILE))

    @property
    def target(self) -> str:
        """The hardware target these weights predict."""
        return self.spec.target

    @property
    def metrics(self) -> list[str]:
        """Metric names, in output order."""
        return list(self.spec.metrics)

    def standardised(self, graphs: list[GraphFeatures]) -> np.ndarray:
        """Raw network outputs (standardised), one row per graph."""
        return runtime.forward(self.tensors, self.spec.layers, graphs,
                               self._node_mu, self._node_sigma, self._global_mu,
                               self._global_sigma, self._additive, self._peak, self._type_map,
                               self.spec.align)

    def operator_costs(self, graph: GraphFeatures) -> dict[str, tuple[np.ndarray, float]]:
        """Per additive metric: each operator's cost and the network's overhead.

        They add up to :meth:`predict`'s figure (the additive readout only; ``{}`` for
        weights trained with the pooled one).
        """
        if self._additive is None:
            return {}
        costs, overhead = runtime.operator_costs(
            self.tensors, self.spec.layers, graph, self._node_mu,
            self._node_sigma, self._global_mu, self._global_sigma, self._additive, self._peak,
            self._type_map, self.spec.align)
        names = self.spec.additive
        return {m: (costs[:, j], float(overhead[j])) for j, m in enumerate(names)}

    def outside_training(self, graph: GraphFeatures, op_names: list[str]) -> list[str]:
        """Why ``graph`` is unlike the training data (empty when it is not)."""
        from perfsage.predictors.domain import outside

        return outside(graph, self.spec.domain, op_names)

    def predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        """Every metric for every graph, in the target's units.

        Weights far outside what a graph can be scored with may overflow to ``inf``:
        quietly here (no NumPy warning on stderr); :func:`runtime.check_finite` is what
        stops such a figure.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            return decode(self.standardised(graphs), self._scale)
