"""A weights config.json is parsed once, and each way of damaging it ends in one WeightsError.

Every case edits a copy of a shipped weights folder and seals it again (a fresh
``spec_sha256``, as a program writing its own config would), so that what is checked is the
field itself: the message must name the file and the field, and loading must never end in a
traceback or in weights that predict NaN. An edit left unsealed is test_model_spec.py's.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from perfsage.errors import PerfSageError, PredictionError, WeightsError
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel
from perfsage.predictors.perfsage_gnn.runtime import check_finite
from perfsage.predictors.perfsage_gnn.spec import ModelSpec, seal
from perfsage.predictors.shipped import shipped_targets, weights_dir

TARGET = "ethos-u55-128"
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


@pytest.fixture
def folder(tmp_path) -> Path:
    """A copy of the shipped ethos-u55-128 weights (config and safetensors only)."""
    copy = tmp_path / "weights"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(weights_dir(TARGET) / name, copy / name)
    return copy


def _edit(folder: Path, change: Callable[[dict], None]) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    sealed = seal(config) if "spec_sha256" in config else config
    path.write_text(json.dumps(sealed))  # NaN and Infinity written as Python's json does


def _delete(*keys: str) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        *parents, last = keys
        for key in parents:
            config = config[key]
        del config[last]
    return change


def _set(value, *keys) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        *parents, last = keys
        for key in parents:
            config = config[key]
        config[last] = value
    return change


REQUIRED = ["format", "feature_version", "op_types", "tensors", "weights_sha256", "target",
            "metrics", "modes", "mu", "sigma", "node_mu", "node_sigma", "global_mu",
            "global_sigma", "hyper", "constants", "additive", "peak", "rate_init",
            "node_columns", "global_columns", "net_constants", "domain", "trained"]


@pytest.mark.parametrize("field", REQUIRED)
def test_a_missing_field_is_named(folder, field):
    _edit(folder, _delete(field))
    with pytest.raises(WeightsError, match=f"missing field '{field}'") as info:
        PerfSAGEModel.load(folder)
    assert str(info.value).startswith(str(folder / "config.json"))
    assert "\n" not in str(info.value)


def test_a_missing_nested_field_is_named(folder):
    _edit(folder, _delete("hyper", "layers"))
    with pytest.raises(WeightsError, match="missing field 'hyper.layers'"):
        PerfSAGEModel.load(folder)


BAD_VALUES = {
    "zero sigma": (_set(0.0, "sigma", 2), r"'sigma'\[2\] is 0.0.*above 0"),
    "negative sigma": (_set(-1.5, "sigma", 0), r"'sigma'\[0\] is -1.5"),
    "NaN sigma": (_set(math.nan, "sigma", 1), r"'sigma'\[1\] is nan"),
    "infinite mu": (_set(math.inf, "mu", 0), r"'mu'\[0\] is inf.*finite"),
    "zero node sigma": (_set(0.0, "node_sigma", 5), r"'node_sigma'\[5\] is 0.0"),
    "NaN global mu": (_set(math.nan, "global_mu", 3), r"'global_mu'\[3\] is nan"),
    "mu of the wrong type": (_set("1.0", "mu"), r"'mu'.*a list of numbers, not str"),
    "a string in mu": (_set([1.0, "x", 1, 1, 1, 1], "mu"), r"'mu'\[1\].*a number, not str"),
    "too few mu": (_set([1.0, 2.0], "mu"), r"'mu' has 2 entries.*6 metrics"),
    "unknown additive metric": (_set(["latency_ms", "speed_ms"], "additive"),
                                r"'additive'.*unknown metric 'speed_ms'"),
    "unknown peak metric": (_set(["latency_ms"], "peak"), r"'peak'.*'latency_ms'.*not a peak"),
    "unknown mode": (_set("sqrt", "modes", "latency_ms"), r"'modes.latency_ms' is 'sqrt'"),
    "a metric without a mode": (_delete("modes", "energy_mj"), r"'modes'.*'energy_mj'"),
    "a metric twice": (_set(["latency_ms"] * 6, "metrics"), r"'metrics'.*twice"),
    "metrics not a list": (_set("latency_ms", "metrics"), r"'metrics'.*a list"),
    "target not a string": (_set(55, "target"), r"'target'.*a string, not int"),
    "layers negative": (_set(-1, "hyper", "layers"), r"'hyper.layers' is -1"),
    "layers beyond the weights": (_set(5, "hyper", "layers"), r"'hyper.layers'.*fwd.4"),
    "layers short of the weights": (_set(3, "hyper", "layers"), r"'hyper.layers'.*fwd.3"),
    "layers a float": (_set(4.5, "hyper", "layers"), r"'hyper.layers'.*an integer"),
    "type dropout out of range": (_set(1.5, "hyper", "type_dropout"), r"'hyper.type_dropout'"),
    "node columns": (lambda c: c["node_mu"].append(0.0), r"'node_mu' has 44 entries.*43"),
    "alignment off": (lambda c: c.update(node_columns=c["node_columns"][:33]
                                         + c["node_columns"][39:]),
                      r"'node_mu' has 43 entries.*37 node columns"),
    "roofline without its target": (_set(None, "roofline_target"), r"'roofline_target' must"),
    "a roofline target without its columns": (
        lambda c: c.update(node_columns=c["node_columns"][:-4]), r"'roofline_target' must"),
    "a column unknown": (_set("speed", "node_columns", 3),
                         r"'node_columns'.*column 0 \('kernel_h'\) does not start"),
    "a group cut short": (lambda c: c["node_columns"].pop(),
                          r"'node_columns'.*column 39 \('log_compute_cycles'\)"),
    "a group twice": (lambda c: c["node_columns"].append("live_bytes"),
                      r"'node_columns' names the live_bytes columns twice"),
    "columns out of order": (lambda c: c["node_columns"].insert(0, c["node_columns"].pop(38)),
                             r"'node_columns'.*column 0 \('out_c_pad32'\)"),
    "fewer columns than the weights": (
        lambda c: c.update(node_columns=c["node_columns"][:-10] + c["node_columns"][-4:],
                           node_mu=c["node_mu"][:37], node_sigma=c["node_sigma"][:37]),
        r"'lin_in.weight'.*\[128, 75\].*37 node columns"),
    "no columns": (_set([], "node_columns"), r"'node_columns' names no column"),
    "global columns": (_set("ops", "global_columns", 6), r"'global_columns' differs"),
    "a constant missing": (_delete("net_constants", "rate_bound"), r"'net_constants' names"),
    "a zero constant": (_set(0, "net_constants", "sum_scale"),
                        r"'net_constants.sum_scale' is 0.*above 0"),
    "rates dropped": (_set(None, "rate_init"), r"'node_head.2.weight'.*4 additive metrics"),
    "rates of the wrong shape": (lambda c: c["rate_init"].pop(), r"'rate_init' must be null or 6"),
    "hidden off": (_set(64, "hyper", "hidden"), r"'lin_in.weight'.*hyper.hidden"),
    "a fingerprint of the wrong type": (_set(7, "trained", "data_sha256"),
                                        r"'trained.data_sha256'.*a string or null"),
    "no held-out space recorded": (_delete("trained", "holdout_space"),
                                   r"missing field 'trained.holdout_space'"),
    "a metric too many": (lambda c: (c["metrics"].append("dram_kib"), c["mu"].append(0.0),
                                     c["sigma"].append(1.0), c["modes"].update(dram_kib="log")),
                          r"'head.4.weight'.*\[6, 128\].*7 metrics"),
    "domain op types": (_set("CONV_2D", "domain", "op_types"), r"'domain.op_types'.*a list"),
    "domain range": (_set([0.0], "domain", "global_min"), r"'domain.global_min' has 1 entr"),
    "not an object": (lambda c: c.clear(), r"missing field 'format'"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_a_bad_value_is_named(folder, case):
    change, expected = BAD_VALUES[case]
    _edit(folder, change)
    with pytest.raises(WeightsError, match=expected) as info:
        PerfSAGEModel.load(folder)
    assert str(info.value).startswith(str(folder / "config.json"))
    assert "\n" not in str(info.value)


def test_a_config_that_is_not_an_object(folder):
    (folder / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(WeightsError, match="not a JSON object"):
        PerfSAGEModel.load(folder)


def test_a_bad_digest_field(folder):
    _edit(folder, _set(12, "weights_sha256"))
    with pytest.raises(WeightsError, match="'weights_sha256'.*a string, not int"):
        PerfSAGEModel.load(folder)


@pytest.mark.parametrize("target", shipped_targets())
def test_every_shipped_config_parses_to_what_it_says(target):
    model = PerfSAGEModel.load(weights_dir(target))
    spec, raw = model.spec, model.config
    assert isinstance(spec, ModelSpec)
    assert (spec.target, list(spec.metrics)) == (raw["target"], raw["metrics"])
    assert list(spec.mu) == raw["mu"] and list(spec.sigma) == raw["sigma"]
    assert list(spec.additive) == raw["additive"] and list(spec.peak) == raw["peak"]
    assert list(spec.node_columns) == raw["node_columns"]
    assert spec.layers == raw["hyper"]["layers"] and spec.sha256 == raw["spec_sha256"]
    assert (spec.dataset, spec.holdout_space) == (raw["trained"]["dataset"], None)
    assert spec.source == str(weights_dir(target) / "config.json")


def _graphs() -> list:
    from perfsage.graph import read_model
    from perfsage.predictors.features import featurize

    return [featurize(read_model(path)) for path in EXAMPLES]


def test_the_checked_config_predicts_as_the_raw_one_did(folder):
    # The shipped numbers themselves are pinned by test_prediction_numbers.py.
    graphs = _graphs()
    shipped, copy = PerfSAGEModel.load(weights_dir(TARGET)), PerfSAGEModel.load(folder)
    got, expected = copy.predict(graphs), shipped.predict(graphs)
    assert got.keys() == expected.keys()
    for metric, values in expected.items():
        np.testing.assert_array_equal(got[metric], values)


def test_non_finite_figures_never_leave_the_runtime():
    figures = {"latency_ms": np.array([1.0, 2.0]), "sram_kib": np.array([3.0, np.inf])}
    with pytest.raises(PredictionError, match=r"^b\.tflite: .*sram_kib.*inf") as info:
        check_finite(figures, ["a.tflite", "b.tflite"])
    assert isinstance(info.value, PerfSageError) and "\n" not in str(info.value)
    with pytest.raises(PredictionError, match=r"a\.tflite: .*latency_ms.*nan"):
        check_finite({"latency_ms": np.array([np.nan])}, ["a.tflite"])
    check_finite(figures | {"sram_kib": np.array([3.0, 4.0])}, ["a.tflite", "b.tflite"])


def test_absurd_but_finite_scales_end_in_one_clean_error(folder):
    # A huge mean passes the config's checks but overflows exp(): caught where figures
    # are produced, not printed as inf.
    _edit(folder, _set(1e6, "mu", 4))
    model = PerfSAGEModel.load(folder)
    with pytest.raises(PredictionError, match=r"^ds_cnn.*: .*cpu_ops"):
        check_finite(model.predict(_graphs()), [p.name for p in EXAMPLES])
