"""Adapting to a user's board: a CSV of real measurements in, a weights folder out.

Twelve keyword-spotting models are labelled by the real tools (LiteRT timing this machine's
CPU; Vela for Ethos-U65), written to a CSV as a user would, and adapted with a small
candidate search so the file stays quick. The CLI's side (one-line errors, `predict
--weights` without `-t`, resuming) is in tests/cli/test_adapt_command.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfsage.dataset.measurements import read_measurements
from perfsage.errors import UsageError
from perfsage.predictors.adapt import Settings, adapt, read_rows
from perfsage.predictors.perfsage_gnn import weights
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel

#: A small search: three folds, one ridge, two step counts.
QUICK = Settings(folds=3, ridges=(0.01,), steps=(10, 40))


def _models(folder, count=12, seed=3):
    """``count`` keyword-spotting models written as .tflite files; their paths."""
    from perfsage.spaces import get_space

    space, rng = get_space("keyword-spotting"), np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"kws_{i:02d}.tflite"
        path.write_bytes(space.build(space.sample(rng)))
        paths.append(path)
    return paths


def _csv(path, models, labels: dict[str, list[float]]):
    lines = ["model," + ",".join(labels)]
    for i, model in enumerate(models):
        lines.append(f"{model.name}," + ",".join(f"{labels[m][i]:.6g}" for m in labels))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Twelve models with this machine's LiteRT latency and heap, as a user's CSV."""
    from perfsage.targets.litert_cpu import CpuLiteRT

    folder = tmp_path_factory.mktemp("board")
    models = _models(folder)
    cpu = CpuLiteRT(runs=20, warmup=3, max_rounds=2)
    found = [cpu.measure(m.read_bytes()) for m in models]
    labels = {"latency_ms": [f["latency_ms"] for f in found],
              "arena_kib": [f["arena_kib"] for f in found]}
    return _csv(folder / "my-board.csv", models, labels), labels


@pytest.mark.litert
@pytest.mark.training
def test_adapted_folder_predicts_what_was_fitted(measured, tmp_path):
    csv, labels = measured
    out = tmp_path / "w"
    report = adapt(csv, out, base="ethos-u55-128", name="my-board", settings=QUICK)
    tensors, config = weights.load(out)
    assert config["target"] == "my-board"
    assert config["metrics"] == ["latency_ms", "arena_kib"]
    assert config["additive"] == ["latency_ms"] and config["peak"] == ["arena_kib"]
    trained = config["trained"]
    assert trained["adapted_from"] == "ethos-u55-128" and trained["train_graphs"] == 12
    model = PerfSAGEModel.load(out)
    graphs = read_rows(read_measurements(csv), "my-board").graphs
    found = model.predict(graphs)
    for choice in report.choices:
        y = np.array(labels[choice.metric])
        fit = float(np.mean(np.abs(found[choice.metric] / y - 1)) * 100)
        assert fit == pytest.approx(choice.fit_error, rel=1e-3)
        assert trained["adapt"][choice.metric]["move"] == choice.candidate.move
        # the simplest candidate within one standard error of the best
        assert choice.scores[choice.candidate.label()] == choice.cv_error
        assert choice.cv_error >= min(choice.scores.values())
        assert np.isfinite(choice.cv_error)
    report_file = json.loads((out / "adapt-report.json").read_text())
    assert [c["metric"] for c in report_file["choices"]] == ["latency_ms", "arena_kib"]


@pytest.mark.litert
@pytest.mark.training
def test_from_nothing_starts_at_the_physics_baseline(measured, tmp_path):
    csv, _ = measured
    report = adapt(csv, tmp_path / "w", base="none", name="my-board",
                   settings=Settings(folds=3, ridges=(0.01,), steps=(10,),
                                     moves=("linear", "scale")))
    by_metric = {c.metric: c for c in report.choices}
    assert by_metric["latency_ms"].candidate.move == "linear"  # the only additive move left
    assert by_metric["latency_ms"].base_error is None  # nothing to compare with
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    assert config["trained"]["adapted_from"] == "none" and config["hyper"]["hidden"] == 64


@pytest.mark.vela
@pytest.mark.training
def test_adapting_u55_weights_to_u65_beats_them_out_of_fold(tmp_path):
    """Vela's U65 latency: the refit, judged on models it never saw, beats the U55 network.

    Deterministic labels (Vela), seeded folds: the comparison is the same on every run.
    """
    from perfsage.targets.ethos_u import EthosU65_256

    models = _models(tmp_path, count=12, seed=11)
    vela = EthosU65_256()
    latency = [vela.measure(m.read_bytes())["latency_ms"] for m in models]
    csv = _csv(tmp_path / "u65.csv", models, {"latency_ms": latency})
    report = adapt(csv, tmp_path / "w", base="ethos-u55-128", name="ethos-u65-256",
                   settings=Settings(folds=3, ridges=(0.01,), steps=(10, 40),
                                     starts=("base",)))
    (choice,) = report.choices
    assert choice.source == "latency_ms"
    assert choice.cv_error < choice.base_error


def test_a_base_with_a_metric_of_the_same_name_starts_exactly_where_it_was():
    """Re-headed for its own metrics, the base network predicts what it did (no refit)."""
    from perfsage.graph import read_model
    from perfsage.predictors.features import featurize
    from perfsage.predictors.graphset import GraphSet
    from perfsage.predictors.perfsage_gnn.adapt import Refitter, from_base
    from perfsage.predictors.shipped import weights_dir
    from perfsage.spaces import get_space

    space, rng = get_space("keyword-spotting"), np.random.default_rng(0)
    graphs = [featurize(read_model(space.build(space.sample(rng)))) for _ in range(6)]
    base = PerfSAGEModel.load(weights_dir("ethos-u55-128"))
    expected = base.predict(graphs)
    labels = {m: expected[m] * 1.5 for m in ("latency_ms", "sram_kib")}
    data = GraphSet(graphs, labels, np.full(6, "x"), np.array([str(i) for i in range(6)]),
                    np.arange(6), "my-board")
    tensors, config = weights.load(weights_dir("ethos-u55-128"))
    refitter = Refitter(from_base(config, tensors, labels, "my-board"), data)
    rows = np.arange(6)
    for metric in labels:
        np.testing.assert_allclose(refitter.predict(metric, rows), expected[metric], rtol=2e-3)
        refitter.apply(metric, "scale", rows)  # the labels are the base's figures x 1.5
        np.testing.assert_allclose(refitter.predict(metric, rows), labels[metric], rtol=2e-3)


def test_settings_refuse_what_cannot_cross_validate():
    with pytest.raises(UsageError, match="folds"):
        Settings(folds=1)
    with pytest.raises(UsageError, match="moves"):
        Settings(moves=("everything",))


def test_a_name_is_checked_before_the_file_is_read(tmp_path):
    with pytest.raises(UsageError, match="--name"):
        adapt(tmp_path / "missing.csv", tmp_path / "w", base="none", name="my board!")
    with pytest.raises(UsageError, match="no such measurements file"):
        adapt(tmp_path / "missing.csv", tmp_path / "w", base="none", name="b")


def test_from_operator_types_learns_a_rate_per_type():
    """Latency that costs depthwise MACs 8x what other MACs cost: one rate cannot fit it,
    a rate per operator type (the ``types`` start's ``head``) can."""
    from perfsage.graph import read_model
    from perfsage.predictors.features import NODE_FEATURES, OP_TYPES, featurize
    from perfsage.predictors.graphset import GraphSet
    from perfsage.predictors.perfsage_gnn.adapt import Refitter, from_nothing
    from perfsage.spaces import get_space

    space, rng = get_space("image-classification"), np.random.default_rng(4)
    graphs = [featurize(read_model(space.build(space.sample(rng)))) for _ in range(12)]
    depthwise = OP_TYPES.index("DEPTHWISE_CONV_2D")
    macs = NODE_FEATURES.index("macs")
    latency = np.array([float(np.sum(np.expm1(g.nodes[:, macs].astype(np.float64))
                                     * np.where(g.op_types == depthwise, 8.0, 1.0))) * 1e-8
                        for g in graphs])
    assert all(np.any(g.op_types == depthwise) for g in graphs[:3])
    data = GraphSet(graphs, {"latency_ms": latency}, np.full(12, "x"),
                    np.array([str(i) for i in range(12)]), np.arange(12), "my-board")
    rows = np.arange(12)
    fits = {}
    for move in ("linear", "linear+head"):
        refitter = Refitter(from_nothing(data, "my-board", encoder="types"), data)
        refitter.apply("latency_ms", move, rows, ridge=0.0, checkpoints=(600,))
        fits[move] = np.mean(np.abs(refitter.predict("latency_ms", rows) / latency - 1))
    assert fits["linear+head"] < 0.03 < fits["linear"]


def test_folds_hold_out_whole_groups_when_there_are_enough():
    from perfsage.predictors.adapt import folds_of

    groups = ["a", "a", "b", "b", "b", "c", "d", "e", "e", "f"]
    folds = folds_of(len(groups), 3, seed=1, groups=groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    for fold in folds:  # a group never spans two folds
        inside = {groups[i] for i in fold}
        assert all(groups[j] not in inside for f in folds if f is not fold for j in f)
    one_group = folds_of(10, 3, seed=1, groups=["x"] * 10)  # too few groups: random folds
    assert sorted(len(f) for f in one_group) == [3, 3, 4]


@pytest.mark.training
def test_runtime_prices_depthwise_macs_and_undelegated_bytes_apart():
    """A CPU whose depthwise MACs cost 30x other MACs and whose undelegated operators'
    bytes cost 25x other bytes: ``compute``'s two shared rates cannot fit it, ``runtime``
    can, through per-type corrections in the network itself (what remains is the floor
    rates every NNLS move leaves on the quantities it does not fit)."""
    from perfsage.graph import read_model
    from perfsage.predictors.features import OP_TYPES, cost_basis, featurize
    from perfsage.predictors.graphset import GraphSet
    from perfsage.predictors.perfsage_gnn.adapt import Refitter, from_nothing
    from perfsage.spaces import get_space
    from perfsage.targets.xnnpack import UNDELEGATED_INT8

    space, rng = get_space("zoo"), np.random.default_rng(5)
    graphs = [featurize(read_model(space.build(space.sample(rng)))) for _ in range(14)]
    depthwise = OP_TYPES.index("DEPTHWISE_CONV_2D")
    slow = [OP_TYPES.index(t) for t in UNDELEGATED_INT8]

    def latency(g):
        basis = np.exp(cost_basis(g.nodes).astype(np.float64))
        macs = basis[:, 0] * np.where(g.op_types == depthwise, 30.0, 1.0)
        moved = basis[:, 1] * np.where(np.isin(g.op_types, slow), 25.0, 1.0)
        return float(1e-8 * macs.sum() + 4e-7 * moved.sum())

    truth = np.array([latency(g) for g in graphs])
    assert sum(np.any(g.op_types == depthwise) for g in graphs) >= 3
    assert sum(np.any(np.isin(g.op_types, slow)) for g in graphs) >= 3
    data = GraphSet(graphs, {"latency_ms": truth}, np.full(14, "x"),
                    np.array([str(i) for i in range(14)]), np.arange(14), "my-board")
    rows, error = np.arange(14), {}
    for move in ("compute", "runtime"):
        refitter = Refitter(from_nothing(data, "my-board", encoder="types"), data)
        refitter.apply("latency_ms", move, rows)
        error[move] = np.mean(np.abs(refitter.predict("latency_ms", rows) / truth - 1))
    assert error["runtime"] < 0.02 < 0.2 < error["compute"]


def test_runtime_needs_the_types_start():
    """Only a head that sees operator types one-hot can hold a per-type rate: the moves
    offered elsewhere leave ``runtime`` out."""
    from types import SimpleNamespace

    from perfsage.predictors.features import OP_TYPES
    from perfsage.predictors.perfsage_gnn.adapt import moves_for

    def spec(layers, embed):
        return SimpleNamespace(modes={"latency_ms": "log"}, additive=("latency_ms",),
                               peak=(), rate_init=[[0.0]], layers=layers, embed=embed)

    types = moves_for(spec(0, len(OP_TYPES) + 1), "latency_ms", from_nothing=True)
    random = moves_for(spec(2, 16), "latency_ms", from_nothing=True)
    base = moves_for(spec(4, 32), "latency_ms", from_nothing=False)
    assert "runtime" in types and "runtime+head" in types
    assert not any(m.startswith("runtime") for m in (*random, *base))
