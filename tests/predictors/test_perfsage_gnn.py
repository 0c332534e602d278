"""PerfSAGE GNN: features, training, the NumPy runtime, weights files and `perfsage predict`."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perfsage.errors import WeightsError
from perfsage.graph import read_model
from perfsage.predictors.features import (
    ALIGNMENT_COLUMNS,
    NODE_FEATURES,
    OP_TYPES,
    UNKNOWN_TYPE,
    featurize,
)
from perfsage.predictors.graphset import load_graphset, split_of, split_sets, splits
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel
from perfsage.predictors.roofline import ROOFLINE_COLUMNS

TARGET = "ethos-u55-128"  # as in conftest.py

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def test_features_describe_every_operator():
    model = read_model(EXAMPLES[0])
    f = featurize(model)
    assert f.nodes.shape == (len(model.main.operators), len(NODE_FEATURES))
    assert f.edges.shape[0] == 2 and f.edges.shape[1] == len(model.main.edges)
    assert np.isfinite(f.nodes).all() and np.isfinite(f.globals).all()


def test_channel_alignment_states_the_padding_to_8_16_and_32():
    from perfsage.predictors.features import channel_alignment

    nodes = np.zeros((4, len(NODE_FEATURES)), dtype=np.float32)
    nodes[:, NODE_FEATURES.index("in_c")] = np.log1p([0, 24, 33, 32])
    nodes[:, NODE_FEATURES.index("out_c")] = np.log1p([0, 9, 17, 64])
    padded = np.exp(channel_alignment(nodes))  # (in, out) for 8, then 16, then 32
    np.testing.assert_allclose(padded[0], 1.0)
    np.testing.assert_allclose(padded[1], [1, 16 / 9, 32 / 24, 16 / 9, 32 / 24, 32 / 9],
                               rtol=1e-6)
    np.testing.assert_allclose(padded[2], [40 / 33, 24 / 17, 48 / 33, 32 / 17, 64 / 33,
                                           32 / 17], rtol=1e-6)
    np.testing.assert_allclose(padded[3], 1.0)


def test_unknown_operator_gets_the_unknown_embedding():
    from ai_edge_litert import schema_py_generated as fb

    from helpers.tflite_edit import edit

    def rename(m):
        m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = 32
        m.operatorCodes[0].customCode = "NeverSeenOp"

    data = edit(EXAMPLES[0].read_bytes(), rename)
    f = featurize(read_model(data))
    assert UNKNOWN_TYPE in f.op_types.tolist()
    assert fb.BuiltinOperator.CUSTOM == 32


def test_splits_are_disjoint_by_graph_hash(labelled):
    data = load_graphset(labelled, TARGET, workers=1)
    masks = splits(data)
    assert sum(m.sum() for m in masks.values()) == len(data)
    train, test = set(data.hashes[masks["train"]]), set(data.hashes[masks["test"]])
    assert not train & test
    assert split_of("00000000ff") == "train" and split_of("00000063aa") == "test"
    held = splits(data, holdout_space="nasbench201")
    assert set(data.spaces[held["test"]]) == {"nasbench201"}
    assert "nasbench201" not in set(data.spaces[held["train"] | held["val"]])


def test_numpy_runtime_equals_the_torch_network(labelled, trained_each_readout):
    from safetensors.torch import load_file
    from torch_geometric.loader import DataLoader

    from perfsage.predictors.perfsage_gnn.net import PerfSAGENet
    from perfsage.predictors.perfsage_gnn.train import _predict, _pyg

    trained = trained_each_readout
    model = PerfSAGEModel.load(trained)
    data = load_graphset(labelled, TARGET, workers=1)
    net = PerfSAGENet.from_spec(model.spec)
    net.load_state_dict(load_file(str(trained / "model.safetensors")))
    additive = model.config["additive"]
    assert set(additive) == (set() if model.config["hyper"]["readout"] == "pool"
                             else {"latency_ms", "npu_cycles", "energy_mj", "flash_kib"})
    assert model.config["peak"] == (["sram_kib"] if model.config["hyper"]["peak"] else [])
    assert ("rate_log" in model.tensors) == bool(model.config["hyper"].get("rates"))
    assert ("in_c_pad8" in model.spec.node_columns) == model.config["hyper"]["align"]
    loader = DataLoader(_pyg(data, model.spec), batch_size=17)
    np.testing.assert_allclose(model.standardised(data.graphs), _predict(net, loader), atol=1e-4)


def test_training_resumes_from_its_checkpoint(labelled, tmp_path):
    from perfsage.predictors.perfsage_gnn.train import Hyper, fit

    data = load_graphset(labelled, TARGET, workers=1)
    hyper = Hyper(epochs=2, hidden=16, layers=1, embed=8)
    first = fit(split_sets(data)["train"], split_sets(data)["val"], TARGET, tmp_path, hyper)
    assert first["epoch"] == 2
    more = Hyper(epochs=2, hidden=16, layers=1, embed=8)
    again = fit(split_sets(data)["train"], split_sets(data)["val"], TARGET, tmp_path, more)
    assert again["epoch"] == 2 and again["wall_s"] == pytest.approx(first["wall_s"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["target"] == TARGET and config["hyper"]["hidden"] == 16


def test_predictions_cover_every_metric(trained):
    import perfsage

    out = perfsage.predict(EXAMPLES[0], weights=str(trained))
    model = PerfSAGEModel.load(trained)
    assert set(out) == set(model.metrics)
    assert all(np.isfinite(v) and v >= 0 for v in out.values())
    many = perfsage.predict_many([p.read_bytes() for p in EXAMPLES], weights=str(trained))
    assert len(many) == len(EXAMPLES)
    assert many[0] == pytest.approx(out)


@pytest.mark.parametrize("damage", ["truncate", "flip", "config", "missing"])
def test_damaged_weights_fail_with_one_line(trained, tmp_path, damage):
    import shutil

    folder = tmp_path / "w"
    shutil.copytree(trained, folder)
    weights = folder / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "config":
        (folder / "config.json").write_text("{not json")
    else:
        weights.unlink()
    with pytest.raises(WeightsError):
        PerfSAGEModel.load(folder)
    result = subprocess.run([sys.executable, "-m", "perfsage", "predict", str(EXAMPLES[0]),
                             "--target", TARGET, "--weights", str(folder)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("perfsage: error: ")


def test_predict_cli_json_and_no_heavy_imports(trained):
    code = ("import sys; from perfsage.cli.main import main; sys.argv = ['perfsage', 'predict', "
            f"{str(EXAMPLES[0])!r}, '--target', {TARGET!r}, '--weights', {str(trained)!r}, "
            "'--json']\ntry:\n    main()\nfinally:\n    print(sorted(m for m in ('torch', "
            "'torch_geometric', 'tensorflow') if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["target"] == TARGET and "latency_ms" in rows[0]["predicted"]
    assert result.stderr.strip().endswith("[]")


def test_live_bytes_peak_is_the_analysis_peak():
    from perfsage.graph import analyze
    from perfsage.predictors.features import graph_live_bytes, live_bytes

    graphs, peaks = [], []
    for path in EXAMPLES:
        model = read_model(path)
        graphs.append(featurize(model))
        peaks.append(analyze(model).peak_activation_bytes)
        live = np.expm1(graph_live_bytes(graphs[-1]).astype(np.float64))
        assert live.max() == pytest.approx(peaks[-1], rel=1e-6)
        assert (live > 0).all()
    sizes = np.array([len(g.op_types) for g in graphs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    edges = np.concatenate([g.edges for g in graphs], axis=1) + np.repeat(
        starts, [g.edges.shape[1] for g in graphs])
    batched = live_bytes(np.concatenate([g.nodes for g in graphs]), edges, starts, sizes,
                         np.stack([g.globals for g in graphs]))
    np.testing.assert_array_equal(batched, np.concatenate([graph_live_bytes(g) for g in graphs]))


def test_types_never_trained_on_are_predicted_as_unknown(trained_each_readout):
    model = PerfSAGEModel.load(trained_each_readout)
    g = featurize(read_model(EXAMPLES[0]))
    seen = set(model.config["domain"]["op_types"])
    unseen = next(i for i, name in enumerate(OP_TYPES) if name not in seen)
    renamed = dataclasses.replace(g, op_types=np.where(np.arange(len(g.op_types)) == 0, unseen,
                                                       g.op_types))
    as_unknown = dataclasses.replace(g, op_types=np.where(np.arange(len(g.op_types)) == 0,
                                                          UNKNOWN_TYPE, g.op_types))
    dropout = bool(model.config["hyper"].get("type_dropout"))
    if model.spec.roofline_target is None:
        same = np.array_equal(model.standardised([renamed]), model.standardised([as_unknown]))
        assert same == dropout
    else:
        # The roofline columns still read the operator's real type (physics knows it); the
        # embedding is what treats it as unknown.
        assert (model._network.type_map[unseen] == UNKNOWN_TYPE) == dropout
        assert np.isfinite(model.standardised([renamed])).all()


def test_train_cli_records_its_readout_options(labelled, tmp_path):
    from helpers.processes import perfsage

    out = tmp_path / "w"
    done = perfsage("train", str(labelled), "--target", TARGET, "--out", str(out), "--epochs",
                    "1", "--hidden", "8", "--layers", "1", "--no-peak", "--type-dropout", "0.3",
                    "--no-align", "--no-roofline")
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    hyper = config["hyper"]
    assert (hyper["readout"], hyper["rates"], hyper["peak"], hyper["type_dropout"],
            hyper["align"]) == ("additive", True, False, 0.3, False)
    assert config["peak"] == [] and len(config["rate_init"]) == 5  # 4 basis rates + overhead
    assert config["node_columns"] == list(NODE_FEATURES)
    assert len(config["node_mu"]) == len(NODE_FEATURES)
    assert config.get("roofline_target") is None
    physics = perfsage("train", str(labelled), "--target", TARGET, "--out", str(tmp_path / "r"),
                       "--epochs", "1", "--hidden", "8", "--layers", "1")
    assert physics.returncode == 0, physics.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["roofline_target"] == TARGET
    assert config["node_columns"][-len(ROOFLINE_COLUMNS):] == list(ROOFLINE_COLUMNS)
    assert len(config["rate_init"]) == 6  # 4 basis rates, the roofline's, the overhead
    bad = perfsage("train", str(labelled), "--target", TARGET, "--out", str(out),
                   "--type-dropout", "1.5")
    assert bad.returncode != 0 and "type-dropout" in bad.stderr


def test_train_continues_from_weights_of_the_same_spec_only(labelled, tmp_path):
    from helpers.processes import perfsage

    small = ("--epochs", "1", "--hidden", "8", "--layers", "1")
    # The first network sees keyword spotting only; the second goes on with both spaces.
    first = perfsage("train", str(labelled), "--target", TARGET, "--out", str(tmp_path / "a"),
                     *small, "--holdout-space", "nasbench201")
    assert first.returncode == 0, first.stderr
    more = perfsage("train", str(labelled), "--target", TARGET, "--out", str(tmp_path / "b"),
                    *small, "--lr", "0.0005", "--init", str(tmp_path / "a"))
    fresh = perfsage("train", str(labelled), "--target", TARGET, "--out", str(tmp_path / "f"),
                     *small)
    assert more.returncode == 0 and fresh.returncode == 0, more.stderr + fresh.stderr
    a, b, f = (json.loads((tmp_path / d / "config.json").read_text()) for d in "abf")
    assert a["node_columns"] == b["node_columns"] and b["hyper"]["lr"] == 0.0005
    # The learnt weights keep the standardisation they were learnt under, not the new data's.
    assert b["node_mu"] == a["node_mu"] != f["node_mu"] and b["mu"] == a["mu"] != f["mu"]
    assert b["trained"]["train_graphs"] == f["trained"]["train_graphs"]
    other = perfsage("train", str(labelled), "--target", TARGET, "--out", str(tmp_path / "c"),
                     *small, "--no-roofline", "--init", str(tmp_path / "a"))
    errors = [line for line in other.stderr.splitlines() if "error" in line]
    assert other.returncode == 2 and len(errors) == 1  # stderr also holds the progress line
    assert errors[0].startswith("perfsage: error: --init") and "node_columns" in errors[0]


def test_operator_costs_add_up_to_the_prediction(trained_each_readout):
    model = PerfSAGEModel.load(trained_each_readout)
    graph = featurize(read_model(EXAMPLES[0]))
    parts = model.operator_costs(graph)
    if model.config["hyper"]["readout"] == "pool":
        assert parts == {}
        return
    predicted = model.predict([graph])
    assert set(parts) == set(model.config["additive"])
    for metric, (costs, overhead) in parts.items():
        assert costs.shape == (len(graph.op_types),) and (costs > 0).all() and overhead > 0
        assert costs.sum() + overhead == pytest.approx(predicted[metric][0], rel=1e-4)


def test_defaults_without_a_peak_metric_train_and_predict(labelled, tmp_path):
    """The peak readout's live-bytes feature comes only with a peak metric (LatBench has none)."""
    from perfsage.predictors.perfsage_gnn.train import Hyper, fit

    data = load_graphset(labelled, TARGET, workers=1)
    data.labels = {"latency_ms": data.labels["latency_ms"]}
    sets = split_sets(data)
    fit(sets["train"], sets["val"], TARGET, tmp_path, Hyper(epochs=1, hidden=8, layers=1,
                                                           embed=8))
    model = PerfSAGEModel.load(tmp_path)
    # The defaults add the alignment and (on Ethos-U) roofline columns, no live bytes.
    assert model.config["peak"] == []
    assert model.spec.node_columns == NODE_FEATURES + ALIGNMENT_COLUMNS + ROOFLINE_COLUMNS
    assert len(model.config["node_mu"]) == len(NODE_FEATURES) + 6 + 4
    assert np.isfinite(model.predict(sets["test"].graphs)["latency_ms"]).all()


def test_a_rare_zero_label_leaves_the_metric_relative(labelled):
    """Vela's 0 KiB SRAM on a few graphs must not turn SRAM into an absolute-scale metric."""
    from perfsage.predictors.graphset import RARE_ZERO_SHARE, without_rare_zeros

    data = load_graphset(labelled, TARGET, workers=1)
    copies = int(1 / RARE_ZERO_SHARE) // len(data) + 1  # enough graphs for one zero to be rare
    many = data.subset(np.tile(np.arange(len(data)), copies))
    many.labels = {m: v.copy() for m, v in many.labels.items()}
    many.labels["sram_kib"][0] = 0.0
    kept = without_rare_zeros(many)
    assert len(kept) == len(many) - 1 and (kept.labels["sram_kib"] > 0).all()
    assert (kept.labels["cpu_ops"] == 0).any()  # a metric often 0 keeps its graphs
    many.labels["sram_kib"][: len(many) // 10] = 0.0  # not rare: nothing dropped
    assert len(without_rare_zeros(many)) == len(many)
