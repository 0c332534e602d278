"""A briefly trained network, shared by the predictor tests (the dataset: tests/conftest.py)."""

from __future__ import annotations

import pytest

TARGET = "ethos-u55-128"


#: Readout settings the runtime must mirror: pooled, plain additive, and the default
#: (additive anchored to rates, peak memory, type dropout, channel alignment, roofline).
PLAIN = {"peak": False, "type_dropout": 0.0, "rates": False, "align": False,
         "roofline": False}
READOUTS = {"pool": {"readout": "pool", **PLAIN}, "additive": {"readout": "additive", **PLAIN},
            "default": {}}


@pytest.fixture(scope="session", params=list(READOUTS))
def trained_each_readout(labelled, tmp_path_factory, request):
    """Weights briefly trained with each readout of the network."""
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.perfsage_gnn.train import Hyper, fit

    out = tmp_path_factory.mktemp(f"weights-{request.param}")
    sets = split_sets(load_graphset(labelled, TARGET, workers=1))
    fit(sets["train"], sets["val"], TARGET, out,
        Hyper(epochs=3, hidden=16, layers=2, embed=8, **READOUTS[request.param]))
    return out


@pytest.fixture(scope="session")
def trained(labelled, tmp_path_factory):
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.perfsage_gnn.train import Hyper, fit

    out = tmp_path_factory.mktemp("weights")
    data = load_graphset(labelled, TARGET, workers=1)
    sets = split_sets(data)
    fit(sets["train"], sets["val"], TARGET, out, Hyper(epochs=3, hidden=16, layers=2, embed=8))
    return out
