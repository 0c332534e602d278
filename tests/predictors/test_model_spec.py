"""The GNN's model spec: one definition of its node columns, sealed, and old weights migrated.

The spec in a weights folder's config.json names the node columns in order, the readouts,
scaling, constants, domain and data fingerprint (``perfsage_gnn/spec.py``), and
``spec_sha256`` seals it together with the weights' own hash. Weights written before specs
are refused with the converter's command, and ``scripts/migrate_weights.py`` turns them into
specs without changing a single prediction.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perfsage.errors import WeightsError
from perfsage.graph import read_model
from perfsage.predictors.features import (
    ALIGNMENT_COLUMNS,
    LIVE_BYTES_COLUMN,
    NODE_FEATURES,
    channel_alignment,
    featurize,
)
from perfsage.predictors.perfsage_gnn import spec as spec_module
from perfsage.predictors.perfsage_gnn.migrate import migrate, migrated
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel
from perfsage.predictors.perfsage_gnn.spec import Batch, node_inputs, seal
from perfsage.predictors.roofline import ROOFLINE_COLUMNS
from perfsage.predictors.roofline import node_columns as roofline_columns
from perfsage.predictors.shipped import weights_dir
from perfsage.targets.hardware import hardware

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "models").glob("*.tflite"))
TARGET = "ethos-u55-128"

#: The shipped weights' figures on examples/models (sorted by name), recorded with the
#: configs as they were before model specs (float32 values, 9 significant digits), for the
#: weights trained before specs (the Ethos-U ones were retrained since, as specs).
PRE_MIGRATION = {
    "cortex-m-tflm": {
        "arena_kib": [24.9553204, 203.037201, 103.485596, 28.740036],
        "flash_kib": [42.4677505, 594.681091, 25.6153355, 11.0051003],
    },
}


def _graphs() -> list:
    return [featurize(read_model(path)) for path in EXAMPLES]


def _copy(target: str, into: Path) -> Path:
    """A copy of a shipped weights folder (config and safetensors only)."""
    folder = into / target
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(weights_dir(target) / name, folder / name)
    return folder


def _before_specs(config: dict) -> dict:
    """``config`` as weights were written before model specs (the loose ``align`` key)."""
    old = {k: v for k, v in config.items()
           if k not in ("spec_version", "node_columns", "global_columns", "net_constants",
                        "spec_sha256")}
    old["trained"] = {k: v for k, v in config["trained"].items() if k != "data_sha256"}
    old["align"] = ALIGNMENT_COLUMNS[0] in config["node_columns"]
    if not old["peak"]:
        del old["peak"]
    return old


def _write(folder: Path, config: dict) -> None:
    (folder / "config.json").write_text(json.dumps(config, indent=1))


@pytest.mark.parametrize("target", sorted(PRE_MIGRATION))
def test_shipped_weights_predict_what_they_did_before_migration(target):
    figures = PerfSAGEModel.load(weights_dir(target)).predict(_graphs())
    assert list(figures) == list(PRE_MIGRATION[target])
    for metric, expected in PRE_MIGRATION[target].items():
        np.testing.assert_allclose(figures[metric], expected, rtol=1e-6, err_msg=metric)


@pytest.mark.parametrize("target", sorted(PRE_MIGRATION))
def test_migrating_an_old_config_gives_the_shipped_spec(target, tmp_path):
    shipped = json.loads((weights_dir(target) / "config.json").read_text())
    folder = _copy(target, tmp_path)
    _write(folder, _before_specs(shipped))
    with pytest.raises(WeightsError, match=r"from before model specs; convert it once with "
                       rf"`python scripts/migrate_weights\.py {folder}`"):
        PerfSAGEModel.load(folder)
    weights_bytes = (folder / "model.safetensors").read_bytes()
    assert "converted to model spec version 2" in migrate(folder)
    assert json.loads((folder / "config.json").read_text()) == shipped
    assert (folder / "model.safetensors").read_bytes() == weights_bytes
    assert "already a model spec" in migrate(folder)


def test_the_migration_script_converts_in_place_and_reports_damage(tmp_path):
    old_target = sorted(PRE_MIGRATION)[0]
    shipped = json.loads((weights_dir(old_target) / "config.json").read_text())
    good, bad = _copy(old_target, tmp_path), tmp_path / "bad"
    shutil.copytree(good, bad)
    for folder in (good, bad):
        _write(folder, _before_specs(shipped))
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    script = [sys.executable, str(ROOT / "scripts" / "migrate_weights.py")]
    done = subprocess.run([*script, str(good)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert PerfSAGEModel.load(good).spec.sha256 == shipped["spec_sha256"]
    old_text = (bad / "config.json").read_text()
    failed = subprocess.run([*script, str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1
    assert "SHA-256 does not match" in failed.stderr
    assert (bad / "config.json").read_text() == old_text  # nothing written


def test_migration_derives_columns_from_the_old_keys_and_keeps_every_number():
    shipped = json.loads((weights_dir("cortex-m-tflm") / "config.json").read_text())
    old = _before_specs(shipped)
    for align, peak in ((False, []), (True, []), (False, ["arena_kib"]), (True, ["arena_kib"])):
        new = migrated({**old, "align": align, "peak": peak})
        assert new["node_columns"] == [*NODE_FEATURES, *([LIVE_BYTES_COLUMN] if peak else []),
                                       *(ALIGNMENT_COLUMNS if align else [])]
        kept = {k: v for k, v in old.items() if k not in ("align", "peak", "trained")}
        assert {k: new[k] for k in kept} == kept
        assert new["trained"] == {**old["trained"], "data_sha256": None}
    bare = migrated({k: v for k, v in old.items() if k != "trained"})  # fit() without info
    assert bare["trained"] == {"dataset": None, "holdout_space": None, "data_sha256": None}


@pytest.mark.parametrize("edit", ["a number", "the column order", "the weights' hash"])
def test_an_edited_config_is_refused_naming_the_file(tmp_path, edit):
    folder = _copy(TARGET, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    if edit == "a number":
        config["sigma"][0] *= 1.01
    elif edit == "the column order":
        cols = config["node_columns"]
        cols[0], cols[1] = cols[1], cols[0]
    else:  # other weights put in, their hash updated, the spec not sealed again
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-5] ^= 0xFF
        (folder / "model.safetensors").write_bytes(bytes(data))
        config["weights_sha256"] = hashlib.sha256(data).hexdigest()
    _write(folder, config)
    message = rf"^{folder / 'config.json'}: edited after it was written .*spec_sha256"
    with pytest.raises(WeightsError, match=message):
        PerfSAGEModel.load(folder)
    result = subprocess.run([sys.executable, "-m", "perfsage", "predict", str(EXAMPLES[0]),
                             "-t", TARGET, "--weights", str(folder)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "edited after it was written" in result.stderr


def test_a_spec_of_another_version_is_refused(tmp_path):
    folder = _copy(TARGET, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    _write(folder, seal({**config, "spec_version": 3}))
    with pytest.raises(WeightsError, match=r"'spec_version' is 3; this PerfSAGE reads spec "
                       "version 2"):
        PerfSAGEModel.load(folder)


def test_node_inputs_are_the_named_columns_in_order():
    model = PerfSAGEModel.load(weights_dir(TARGET))
    spec = model.spec
    batch = spec.batch(_graphs())
    x = spec.node_inputs(batch)
    assert x.shape == (len(batch.op_types), len(spec.node_columns)) and x.dtype == np.float32
    column = {name: x[:, i] for i, name in enumerate(spec.node_columns)}
    for i, name in enumerate(NODE_FEATURES):
        np.testing.assert_array_equal(column[name], batch.nodes[:, i])
    np.testing.assert_array_equal(column[LIVE_BYTES_COLUMN], batch.live)
    padding = channel_alignment(batch.nodes)
    for i, name in enumerate(ALIGNMENT_COLUMNS):
        np.testing.assert_array_equal(column[name], padding[:, i])
    assert ALIGNMENT_COLUMNS[:2] == ("in_c_pad8", "out_c_pad8")
    physics = np.concatenate([roofline_columns(g, hardware(TARGET)) for g in batch.graphs])
    for i, name in enumerate(ROOFLINE_COLUMNS):
        np.testing.assert_array_equal(column[name], physics[:, i])
    with pytest.raises(ValueError, match="need the target"):
        node_inputs(Batch(_graphs()), spec.groups)


def test_the_runtime_reads_the_constants_the_spec_records(tmp_path):
    folder = _copy(TARGET, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["net_constants"] == spec_module.NET_CONSTANTS
    graphs = _graphs()
    shipped = PerfSAGEModel.load(folder).standardised(graphs)
    constants = {**config["net_constants"], "sum_scale": config["net_constants"]["sum_scale"] * 2}
    _write(folder, seal({**config, "net_constants": constants}))
    assert not np.allclose(PerfSAGEModel.load(folder).standardised(graphs), shipped)


def test_training_writes_a_sealed_spec_with_the_data_fingerprint(trained):
    from perfsage.predictors.graphset import GraphSet

    config = json.loads((trained / "config.json").read_text())
    assert config["spec_version"] == 2 and config["spec_sha256"] == spec_module.spec_sha256(config)
    fingerprint = config["trained"]["data_sha256"]
    assert isinstance(fingerprint, str) and len(fingerprint) == 64
    spec = PerfSAGEModel.load(trained).spec
    assert (spec.data_sha256, spec.dataset, spec.holdout_space) == (fingerprint, None, None)

    def data(labels: list[float]) -> GraphSet:
        return GraphSet([], {"latency_ms": np.array(labels)}, np.array(["s", "s"]),
                        np.array(["a1", "b2"]), np.array([1, 2]))

    same = spec_module.data_sha256(TARGET, {"train": data([1.0, 2.0])})
    assert same == spec_module.data_sha256(TARGET, {"train": data([1.0, 2.0])})
    assert same != spec_module.data_sha256(TARGET, {"train": data([1.0, 2.5])})
    assert same != spec_module.data_sha256("ethos-u65-256", {"train": data([1.0, 2.0])})
