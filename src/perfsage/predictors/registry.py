"""Predictors by name, imported lazily; a saved folder names its predictor in ``format``."""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

from perfsage.errors import UsageError, WeightsError
from perfsage.predictors import saved

#: Name -> "module:class". Adding a predictor is one module plus one line here.
PREDICTORS = {
    "macs-linear": "perfsage.predictors.baselines.macs_linear:MacsLinear",
    "gbdt": "perfsage.predictors.baselines.gbdt:GradientBoosted",
    "brp-nas-gcn": "perfsage.predictors.baselines.brp_nas_gcn:BrpNasGCN",
    "perfsage-gnn": "perfsage.predictors.perfsage_gnn.estimator:PerfSAGE",
    "block": "perfsage.predictors.block.predictor:BlockPredictor",
}


def predictor_names() -> list[str]:
    """Every registered predictor name."""
    return list(PREDICTORS)


def predictor_class(name: str):
    """The class registered as ``name``; UsageError listing the choices otherwise."""
    if name not in PREDICTORS:
        raise UsageError(f"unknown predictor {name!r}; choose from: {', '.join(PREDICTORS)}")
    return pkgutil.resolve_name(PREDICTORS[name])


def get_predictor(name: str, **params: Any):
    """A new, unfitted predictor ``name`` with the given settings."""
    return predictor_class(name)(**params)


def load_predictor(folder: str | Path):
    """Whatever predictor ``folder`` holds, loaded and verified."""
    fmt = saved.read_config(folder)["format"]
    if fmt not in PREDICTORS:
        raise WeightsError(f"{Path(folder) / saved.CONFIG_FILE}: unknown predictor format "
                           f"{fmt!r}; this PerfSAGE reads: {', '.join(PREDICTORS)}")
    return predictor_class(fmt).load(folder)
