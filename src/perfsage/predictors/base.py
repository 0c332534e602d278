"""One interface for every predictor, after scikit-learn's estimator contract.

``__init__`` only stores settings; ``fit(train, val)`` learns from labelled graphs and
returns the predictor; fitted state lives in attributes ending in ``_``; ``predict`` maps
graphs to every metric; ``save`` writes a folder (JSON config plus safetensors or text,
never pickle) that ``perfsage.predictors.registry.load_predictor`` reads back. The
``compare`` command and the LatBench benchmark train and score every predictor this way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from perfsage.errors import UsageError, WeightsError
from perfsage.predictors import saved
from perfsage.predictors.features import FEATURE_VERSION, GraphFeatures


class NotFittedError(UsageError):
    """A predictor was asked to predict or save before it was fitted."""


class Predictor(ABC):
    """Learns ``metrics`` of one target from featurised graphs.

    Subclasses set ``name`` (the registry key, also the saved ``format``) and implement
    ``_fit``, ``_predict``, ``_state`` (tensors and JSON to save) and ``_restore``.
    Settings are the keyword arguments of ``__init__``, stored in ``self.params``.
    """

    name: ClassVar[str]
    #: Whether prediction needs torch (the CLI's fast path avoids such predictors).
    needs_torch: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults())
        if unknown:
            raise UsageError(f"{self.name}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(sorted(self.defaults()))}")
        self.params = {**self.defaults(), **params}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting with its default value."""
        return {}

    # -- the contract ------------------------------------------------------------------

    def fit(self, train: Any, val: Any | None = None) -> Predictor:
        """Learn from ``train`` (a GraphSet); ``val`` is used for early stopping if given."""
        if len(train) == 0:
            raise UsageError(f"{self.name}: no training graphs")
        self.target_ = getattr(train, "target", "") or ""
        self.metrics_ = list(train.labels)
        self._fit(train, val)
        return self

    def predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        """Every metric for every graph, in the target's units."""
        self._check_fitted()
        if not graphs:
            return {m: np.zeros(0) for m in self.metrics_}
        return self._predict(graphs)

    def save(self, folder: str | Path) -> Path:
        """Write the fitted predictor to ``folder`` (created); returns the folder."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors, state = self._state()
        config = {"format": self.name, "feature_version": FEATURE_VERSION,
                  "target": self.target_, "metrics": self.metrics_, "params": self.params,
                  "state": state}
        saved.write_pair(folder, tensors, config)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Predictor:
        """Read a folder written by :meth:`save`; damaged files raise WeightsError."""
        tensors, config = saved.read_pair(folder)
        if config.get("format") != cls.name:
            raise WeightsError(f"{folder}: holds a {config.get('format')!r} predictor, "
                               f"not {cls.name!r}")
        if config.get("feature_version") != FEATURE_VERSION:
            raise WeightsError(f"{folder}: made for feature version "
                               f"{config.get('feature_version')}; this PerfSAGE computes "
                               f"version {FEATURE_VERSION}; retrain")
        predictor = cls(**config["params"])
        predictor.target_, predictor.metrics_ = config["target"], config["metrics"]
        predictor._restore(tensors, config["state"])
        return predictor

    # -- what subclasses implement -------------------------------------------------------

    @abstractmethod
    def _fit(self, train: Any, val: Any | None) -> None: ...

    @abstractmethod
    def _predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted arrays (saved as safetensors) and JSON-able state."""

    @abstractmethod
    def _restore(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None: ...

    # -- helpers -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "metrics_"):
            raise NotFittedError(f"{self.name}: call fit() (or load a saved predictor) "
                                 "before predict() or save()")

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.params.items() if self.defaults().get(k) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"
