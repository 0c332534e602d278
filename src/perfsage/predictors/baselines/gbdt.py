"""Gradient-boosted trees (LightGBM) on whole-graph summary features.

The strongest non-graph baseline in latency-prediction papers is usually a tree ensemble
over hand-made model statistics: if a GNN cannot beat it, message passing adds nothing.
Features come from ``GraphFeatures`` alone (see :func:`summary_features`); one LightGBM
regressor per learnt metric fits the standardised targets of ``outputs.encode``. Saved
models are LightGBM's own text format inside the JSON config: no pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.errors import WeightsError
from perfsage.predictors.base import Predictor
from perfsage.predictors.features import (
    GLOBAL_FEATURES,
    NODE_FEATURES,
    OP_TYPES,
    UNKNOWN_TYPE,
    GraphFeatures,
)
from perfsage.predictors.outputs import decode, encode, output_scaling

_TYPES = UNKNOWN_TYPE + 1
_COL = {name: i for i, name in enumerate(NODE_FEATURES)}
#: Node features summed (after undoing their log1p) and maximised over the graph.
_EXTENSIVE = ("macs", "param_bytes", "input_bytes", "output_bytes", "out_elements")
#: Node features whose largest value describes the graph (widest layer, biggest kernel).
_WIDTHS = ("in_c", "out_c", "kernel_h", "in_h")

SUMMARY_FEATURES = (
    *(f"global_{name}" for name in GLOBAL_FEATURES),
    *(f"count_{t}" for t in (*OP_TYPES, "UNKNOWN")),
    *(f"macs_{t}" for t in (*OP_TYPES, "UNKNOWN")),
    *(f"bytes_{t}" for t in (*OP_TYPES, "UNKNOWN")),
    *(f"sum_{name}" for name in _EXTENSIVE),
    *(f"max_{name}" for name in (*_EXTENSIVE, *_WIDTHS)),
    "edges", "mean_in_bits", "mean_weight_bits",
)


def summary_features(g: GraphFeatures) -> np.ndarray:
    """One row of ``SUMMARY_FEATURES`` for a graph, float64, sizes as log1p.

    Why these: on NPUs and MCUs latency is roughly a sum over operators of a cost that
    depends on the operator type (a depthwise MAC is not a dense MAC; element-wise and
    reshaping ops cost memory traffic, not MACs), so per-type counts, MACs and bytes let
    trees learn per-type rates; the totals and maxima (widest tensor, largest layer) capture
    SRAM pressure and peak memory; bit widths separate int8 from float models. Everything
    is additive over nodes, so a tree sees graphs of any size and search space alike.
    """
    types = g.op_types
    raw = np.expm1(g.nodes.astype(np.float64))  # only the _LOG columns are read back raw
    macs, nbytes = raw[:, _COL["macs"]], raw[:, [_COL[c] for c in (
        "param_bytes", "input_bytes", "output_bytes")]].sum(axis=1)
    extensive = raw[:, [_COL[c] for c in _EXTENSIVE]]
    widths = g.nodes[:, [_COL[c] for c in _WIDTHS]].astype(np.float64)
    empty = len(types) == 0
    return np.concatenate([
        g.globals.astype(np.float64),
        np.log1p(np.bincount(types, minlength=_TYPES)),
        np.log1p(np.bincount(types, weights=macs, minlength=_TYPES)),
        np.log1p(np.bincount(types, weights=nbytes, minlength=_TYPES)),
        np.log1p(extensive.sum(axis=0)),
        np.zeros(len(_EXTENSIVE)) if empty else np.log1p(extensive.max(axis=0)),
        np.zeros(len(_WIDTHS)) if empty else widths.max(axis=0),
        [np.log1p(g.edges.shape[1]),
         0.0 if empty else float(g.nodes[:, _COL["in_bits"]].mean()),
         0.0 if empty else float(g.nodes[:, _COL["weight_bits"]].mean())],
    ])


def summary_matrix(graphs: list[GraphFeatures]) -> np.ndarray:
    """:func:`summary_features` of every graph, stacked [graphs, SUMMARY_FEATURES]."""
    return np.stack([summary_features(g) for g in graphs])


class GradientBoosted(Predictor):
    """LightGBM regression on :func:`summary_features`, one booster per learnt metric."""

    name = "gbdt"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """LightGBM's usual settings, with early stopping on the validation set."""
        return {"n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 31,
                "min_child_samples": 10, "subsample": 0.8, "colsample": 0.8,
                "early_stopping": 50, "seed": 0}

    def _lgb_params(self) -> dict[str, Any]:
        p = self.params
        # One thread (the machine is shared); deterministic + row-wise keep reruns equal.
        return {"objective": "regression", "learning_rate": p["learning_rate"],
                "num_leaves": p["num_leaves"], "min_child_samples": p["min_child_samples"],
                "bagging_fraction": p["subsample"], "bagging_freq": 1,
                "feature_fraction": p["colsample"], "seed": p["seed"],
                "deterministic": True, "force_row_wise": True, "num_threads": 1,
                "verbose": -1}

    def _fit(self, train: Any, val: Any | None) -> None:
        import lightgbm as lgb

        self.scale_ = output_scaling(train.labels)
        # Metric-major rows: LightGBM copies (and warns about) strided column slices.
        x, z = summary_matrix(train.graphs), encode(train.labels, self.scale_).T.copy()
        has_val = val is not None and len(val) > 0
        if has_val:
            xv, zv = summary_matrix(val.graphs), encode(val.labels, self.scale_).T.copy()
        self.models_: list[str] = []
        for i, metric in enumerate(self.scale_["metrics"]):
            if self.scale_["modes"][metric] == "constant":
                self.models_.append("")  # decode() fills in the constant
                continue
            data = lgb.Dataset(x, z[i], params={"verbose": -1})
            kwargs: dict[str, Any] = {}
            if has_val:
                kwargs = {"valid_sets": [lgb.Dataset(xv, zv[i], reference=data)],
                          "callbacks": [lgb.early_stopping(self.params["early_stopping"],
                                                           verbose=False)]}
            booster = lgb.train(self._lgb_params(), data,
                                num_boost_round=self.params["n_estimators"], **kwargs)
            self.models_.append(booster.model_to_string(
                num_iteration=booster.best_iteration or -1))
        self._load_boosters()

    def _load_boosters(self) -> None:
        """Boosters rebuilt from the saved text, so fitted and loaded models predict alike."""
        import lightgbm as lgb

        self.boosters_ = [lgb.Booster(model_str=s) if s else None for s in self.models_]

    def _predict(self, graphs: list[GraphFeatures]) -> dict[str, np.ndarray]:
        x = summary_matrix(graphs)
        z = np.zeros((len(graphs), len(self.boosters_)))
        for i, booster in enumerate(self.boosters_):
            if booster is not None:
                z[:, i] = booster.predict(x, num_threads=1)
        return decode(z, self.scale_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        # Trees are text; the one tensor records the feature layout the trees were cut on.
        layout = np.array([len(SUMMARY_FEATURES)], dtype=np.int64)
        return {"summary_features": layout}, {"scale": self.scale_, "models": self.models_}

    def _restore(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        if int(tensors["summary_features"][0]) != len(SUMMARY_FEATURES):
            raise WeightsError(f"{self.name}: trained on {int(tensors['summary_features'][0])} "
                               f"summary features; this PerfSAGE computes "
                               f"{len(SUMMARY_FEATURES)}; retrain")
        self.scale_, self.models_ = state["scale"], state["models"]
        self._load_boosters()
