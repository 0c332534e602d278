"""A trained PerfSAGE network ready to predict: its spec, weights and the NumPy runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perfsage.predictors.features import GraphFeatures
from perfsage.predictors.outputs import decode
from perfsage.predictors.perfsage_gnn import runtime, weights
from perfsage.predictors.perfsage_gnn.config import read_spec


class PerfSAGEModel:
    """PerfSAGE weights for one target, evaluated with NumPy.

    ``config`` is the weights' config as saved; ``spec`` is the same, checked against its
    hash and the tensors (``config.read_spec``), and is what predicting reads. A config
    that does not fit raises WeightsError naming ``source`` and the field.
    """

    def __init__(self, tensors: dict[str, np.ndarray], config: dict[str, Any],
                 source: str = "weights config") -> None:
        self.tensors = tensors
        self.config = config
        self.spec = read_spec(config, tensors, source)
        self._network = runtime.Network(self.spec, tensors)

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
        return runtime.forward(self._network, graphs)

    def operator_costs(self, graph: GraphFeatures) -> dict[str, tuple[np.ndarray, float]]:
        """Per additive metric: each operator's cost and the network's overhead.

        They add up to :meth:`predict`'s figure (the additive readout only; ``{}`` for
        weights trained with the pooled one).
        """
        if not self.spec.additive:
            return {}
        costs, overhead = runtime.operator_costs(self._network, graph)
        return {m: (costs[:, j], float(overhead[j])) for j, m in enumerate(self.spec.additive)}

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
            return decode(self.standardised(graphs), self.spec.scale)
