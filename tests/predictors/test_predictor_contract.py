"""Every registered predictor honours the Predictor contract (scikit-learn's estimator checks).

One test per predictor and property: fit returns self, predictions cover every metric and
are finite, save/load gives identical predictions, unfitted use and damaged files fail
with a clear error.
"""

from __future__ import annotations

import numpy as np
import pytest

from perfsage.errors import UsageError, WeightsError
from perfsage.predictors.base import NotFittedError
from perfsage.predictors.graphset import load_graphset, split_sets
from perfsage.predictors.registry import get_predictor, load_predictor, predictor_names

TARGET = "ethos-u55-128"  # as in conftest.py

#: Settings that keep each predictor's fit to seconds on the small test dataset.
QUICK = {
    "perfsage-gnn": {"epochs": 2, "hidden": 16, "layers": 1, "embed": 8},
    "brp-nas-gcn": {"epochs": 3, "hidden": 16},
    "block": {"epochs": 3, "hidden": 16},
    "gbdt": {"n_estimators": 20},
}


@pytest.fixture(scope="module")
def sets(labelled):
    return split_sets(load_graphset(labelled, TARGET, workers=1))


@pytest.fixture(scope="module", params=predictor_names())
def fitted(request, sets):
    name = request.param
    predictor = get_predictor(name, **QUICK.get(name, {}))
    assert predictor.fit(sets["train"], sets["val"]) is predictor
    return predictor


def test_predictions_cover_every_metric(fitted, sets):
    pred = fitted.predict(sets["test"].graphs)
    assert set(pred) == set(sets["test"].labels)
    for m, values in pred.items():
        assert values.shape == (len(sets["test"]),), m
        assert np.isfinite(values).all() and (values >= 0).all(), m
    assert fitted.target_ == TARGET


def test_save_load_gives_identical_predictions(fitted, sets, tmp_path):
    fitted.save(tmp_path / "p")
    again = load_predictor(tmp_path / "p")
    assert type(again) is type(fitted) and again.params == fitted.params
    before, after = fitted.predict(sets["test"].graphs), again.predict(sets["test"].graphs)
    for m in before:
        np.testing.assert_array_equal(before[m], after[m])


def test_damaged_weights_fail_with_a_clear_error(fitted, tmp_path):
    folder = fitted.save(tmp_path / "p")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-9])
    with pytest.raises(WeightsError, match="SHA-256"):
        load_predictor(folder)


def test_unfitted_and_misconfigured_predictors_refuse(fitted, sets):
    with pytest.raises(NotFittedError):
        get_predictor(fitted.name).predict(sets["test"].graphs)
    with pytest.raises(UsageError, match="unknown setting"):
        get_predictor(fitted.name, no_such_setting=1)


def test_unknown_predictor_names_the_choices():
    with pytest.raises(UsageError, match="choose from: .*perfsage-gnn"):
        get_predictor("oracle")
