"""`perfsage compare`: same splits for every predictor, nested sizes, resume, table and plots."""

from __future__ import annotations

import json

import pytest

from helpers.processes import perfsage
from perfsage.errors import UsageError
from perfsage.eval.compare import compare, draw, markdown, training_sizes
from perfsage.predictors.graphset import load_graphset

TARGET = "ethos-u55-128"
QUICK_GNN = {"epochs": 2, "hidden": 16, "layers": 1, "embed": 8}


def test_sizes_stop_at_the_data():
    assert training_sizes([100, 300, 1000], 5000) == [100, 300, 1000]
    assert training_sizes([100, 300, 1000], 500) == [100, 300, 500]
    assert training_sizes([1000], 64) == [64]


def test_training_sets_are_nested_and_shared(labelled):
    data = load_graphset(labelled, TARGET, workers=1)
    a, b = draw(data, [10, 30], seed=3), draw(data, [10, 30], seed=3)
    assert (a["train_order"] == b["train_order"]).all()
    small = set(a["train"].hashes[a["train_order"][:10]])
    large = set(a["train"].hashes[a["train_order"][:30]])
    assert small < large
    assert not large & set(a["test"].hashes)


def test_compare_trains_each_predictor_once_and_resumes(labelled, tmp_path):
    data = load_graphset(labelled, TARGET, workers=1)
    settings = {"perfsage-gnn": QUICK_GNN}
    first = compare(data, ["macs-linear", "perfsage-gnn"], tmp_path, sizes=[10, 30],
                    settings=settings)
    assert [(r["predictor"], r["train_graphs"]) for r in first] == [
        ("macs-linear", 10), ("perfsage-gnn", 10), ("macs-linear", 30), ("perfsage-gnn", 30)]
    assert all(r["test_graphs"] == first[0]["test_graphs"] for r in first)
    assert all(r["metrics"]["latency_ms"]["mape"] > 0 for r in first)
    runs = sorted((tmp_path / "runs").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    again = compare(data, ["macs-linear", "perfsage-gnn"], tmp_path, sizes=[10, 30],
                    settings=settings)
    assert [p.stat().st_mtime_ns for p in runs] == stamps  # read back, not retrained
    assert [r["train_s"] for r in again] == [r["train_s"] for r in first]
    table = "\n".join(markdown(again, TARGET))
    assert "| 30 | perfsage-gnn |" in table and "latency_ms" in table


def test_a_changed_default_is_a_new_fit(labelled, tmp_path, monkeypatch):
    from perfsage.predictors.perfsage_gnn.estimator import PerfSAGE

    data = load_graphset(labelled, TARGET, workers=1)
    settings = {"perfsage-gnn": QUICK_GNN}
    compare(data, ["macs-linear", "perfsage-gnn"], tmp_path, sizes=[10], settings=settings)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    defaults = PerfSAGE.defaults()
    monkeypatch.setattr(PerfSAGE, "defaults", classmethod(
        lambda cls: {**defaults, "type_dropout": 0.0}))
    compare(data, ["macs-linear", "perfsage-gnn"], tmp_path, sizes=[10], settings=settings)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    assert after["macs-linear-10.json"] == stamps["macs-linear-10.json"]
    assert after["perfsage-gnn-10.json"] != stamps["perfsage-gnn-10.json"]


def test_cli_writes_table_and_plots(labelled, tmp_path):
    out = tmp_path / "cmp"
    result = perfsage("compare", str(labelled), "--target", TARGET, "--predictor",
                      "macs-linear", "--sizes", "10,20", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["train_graphs"] for r in rows] == [10, 20]
    assert (out / "compare.md").read_text().count("| macs-linear |") >= 2
    assert (out / "learning-latency_ms.png").stat().st_size > 1000


@pytest.mark.parametrize("args, problem", [
    (["--sizes", "10,ten"], "--sizes"),
    (["--set", "macs-linear"], "PREDICTOR.SETTING=VALUE"),
    (["--set", "gnn.epochs=3"], "not among the compared"),
    (["--predictor", "oracle"], "unknown predictor"),
])
def test_cli_bad_options_give_one_line(labelled, tmp_path, args, problem):
    base = ["compare", str(labelled), "--target", TARGET, "--out", str(tmp_path)]
    if "--predictor" not in args:
        base += ["--predictor", "macs-linear"]
    result = perfsage(*base, *args)
    assert result.returncode == 2
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_too_few_models_is_a_usage_error(labelled):
    data = load_graphset(labelled, TARGET, workers=1)
    with pytest.raises(UsageError, match="too few"):
        draw(data.subset(data.spaces == "nothing"), [10], 0)
