"""`perfsage search` and its parts: budgets, mutation, compression genes, Vela's verdict."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from helpers.processes import perfsage as cli
from perfsage.cli.main import main
from perfsage.errors import UsageError
from perfsage.spaces import get_space, space_names
from perfsage.udc.budgets import Budget, parse_budgets
from perfsage.udc.compress import CompressionPlan, LayerCompression, apply_plan
from perfsage.udc.evolution import Evaluator, Evolution, Settings, search, verify_candidates
from perfsage.udc.mutation import Mutator
from perfsage.udc.objectives import resolve

TARGET = "ethos-u55-128"
SPACE = "keyword-spotting"
METRICS = ["latency_ms", "npu_cycles", "sram_kib", "flash_kib", "cpu_ops", "energy_mj"]
#: The issue's budgets: a small search finds keyword spotters within them.
BUDGETS = {"latency_ms": 0.3, "sram_kib": 64, "flash_kib": 120}


def test_budgets_parse_from_text_and_from_a_dict():
    found = parse_budgets(["latency_ms=0.3", " sram_kib = 64 "], METRICS, TARGET)
    assert found == (Budget("latency_ms", 0.3), Budget("sram_kib", 64.0))
    assert parse_budgets({"cpu_ops": 0}, METRICS, TARGET) == (Budget("cpu_ops", 0.0),)


@pytest.mark.parametrize(("budgets", "message"), [
    (["latncy_ms=0.3"], "unknown metric 'latncy_ms' for ethos-u55-128; choose from: latency_ms"),
    (["latency_ms=fast"], "is not a number"),
    (["latency_ms=0.3ms"], "is not a number"),
    (["latency_ms=nan"], "not a finite number"),
    (["latency_ms=-1"], "must be more than 0"),
    (["latency_ms=0"], "must be more than 0"),
    (["latency_ms"], "is not METRIC=VALUE"),
    (["latency_ms=0.3", "latency_ms=0.2"], "given twice"),
    ([], "at least one budget"),
    ({"sram_kib": True}, "not a finite number"),
])
def test_bad_budgets_say_what_is_wrong(budgets, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_budgets(budgets, METRICS, TARGET)


@pytest.mark.parametrize("name", space_names())
def test_a_mutation_changes_one_site_and_keeps_the_weight_seed(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    mutator = Mutator(space, rng, samples=60)
    parent = space.sample(rng)
    kept = copy.deepcopy(parent)
    children = [mutator.mutate(parent, rng) for _ in range(20)]
    assert parent == kept  # children are copies
    assert any(child != parent for child in children)
    assert all(child.get("seed") == parent.get("seed") for child in children)
    if name == SPACE:  # every child of a plain space builds
        for child in children:
            space.build(child)


def test_keyword_spotting_mutations_stay_in_the_spaces_ranges():
    space = get_space(SPACE)
    rng = np.random.default_rng(1)
    mutator = Mutator(space, rng, samples=200)
    config = space.sample(rng)
    for _ in range(300):
        config = mutator.mutate(config, rng)
        assert 2 <= len(config["blocks"]) <= 7
        assert all(8 <= b["filters"] <= 276 and b["stride"] in (1, 2) for b in config["blocks"])
        assert config["first_kernel"] in ([10, 4], [5, 3], [3, 3])


def test_compression_genes_give_the_bytes_of_compress():
    evaluator = Evaluator(get_space(SPACE), TARGET, (), resolve(None), None)
    arch = evaluator.architecture(get_space(SPACE).sample(np.random.default_rng(3)))
    choices = [(0.5, 8), (0.0, 4), (0.9, 2), (0.25, 6)]
    genes = tuple(LayerCompression(*choices[i % 4]) for i in range(len(arch.weight_layers)))
    plan = CompressionPlan(per_layer={layer.op_index: gene for layer, gene
                                      in zip(arch.weight_layers, genes, strict=True)})
    first = evaluator._compressed(arch, genes)
    assert first == apply_plan(arch.tflite, plan) != arch.tflite
    assert evaluator._compressed(arch, genes) == first  # from the per-layer cache


def test_compression_genes_evolve_and_cost_the_proxy():
    space = get_space(SPACE)
    budgets = parse_budgets(BUDGETS, METRICS, TARGET)
    evaluator = Evaluator(space, TARGET, budgets, resolve(None), 0.9)
    found = Evolution(evaluator, Settings(generations=2, population=8, seed=0)).run()
    compressed = [c for c in found if c.compressed]
    assert compressed
    changed = 0
    for c in compressed[:8]:
        [dense] = evaluator.evaluate([(c.config, ())])
        assert len(c.tflite) == len(dense.tflite)  # same graph, only weight values differ
        if c.tflite == dense.tflite:
            continue  # a gene too light to move any weight of a small layer
        changed += 1
        assert c.objective < dense.objective  # pruned or fewer bits: less capacity
    assert changed


def test_build_workers_change_nothing_but_the_time():
    settings = dict(count=2, generations=1, population=8, seed=3, verify=False)
    here = search(SPACE, TARGET, BUDGETS, **settings)
    pooled = search(SPACE, TARGET, BUDGETS, workers=2, **settings)
    assert [c.sha256 for c in here.evaluated] == [c.sha256 for c in pooled.evaluated]
    assert [c.objective for c in here.candidates] == [c.objective for c in pooled.candidates]


@pytest.mark.vela
def test_a_small_search_returns_candidates_vela_confirms(tmp_path):
    import perfsage

    # perfsage.search is the API's function (the package is perfsage.udc, not shadowing it).
    result = perfsage.search(SPACE, TARGET, BUDGETS, count=2, generations=2, population=12,
                             seed=4, out=tmp_path)
    assert len(result.candidates) == 2 and result.tool == "ethos-u-vela"
    objectives = [c.objective for c in result.candidates]
    assert objectives == sorted(objectives, reverse=True)
    for candidate in result.candidates:
        assert candidate.status == "verified"
        for metric, limit in BUDGETS.items():
            assert candidate.bound[metric] <= limit  # the interval's upper end
            assert candidate.measured[metric] <= limit
    assert len({c.arch.digest for c in result.candidates}) == 2
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["objective"]["proxy"] and "not accuracy" in record["objective"]["warning"]
    assert [c["file"] for c in record["candidates"]] == ["candidate_1.tflite",
                                                         "candidate_2.tflite"]
    assert (tmp_path / "candidate_1.tflite").read_bytes() == result.candidates[0].tflite
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "evaluated.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.evaluated)


def test_budgets_are_enforced_on_the_interval_not_the_figure():
    result = search(SPACE, TARGET, {"latency_ms": 0.3}, count=3, generations=1, population=10,
                    seed=2, verify=False)
    assert result.evaluated and result.candidates
    for c in result.evaluated:
        lo, hi = c.prediction.interval["latency_ms"]
        assert c.within_budget == (hi <= 0.3)
    assert all(c.within_budget for c in result.candidates)
    nothing = search(SPACE, TARGET, {"latency_ms": 1e-4}, count=1, generations=1,
                     population=6, verify=False)
    assert not nothing.candidates and not nothing.complete


@pytest.mark.vela
def test_vela_drops_a_candidate_that_breaks_a_budget_when_measured():
    result = search(SPACE, TARGET, {"latency_ms": 0.5}, count=1, generations=0, population=6,
                    seed=1, verify=False)
    [best] = result.candidates
    from perfsage.targets import get_target

    measured = get_target(TARGET).measure(best.tflite)["latency_ms"]
    tight = (Budget("latency_ms", measured * 0.99),)
    kept, dropped = verify_candidates([best], tight, TARGET, 1, 60.0, result.timing)
    assert not kept and dropped == [best]
    assert best.status == "dropped" and best.reason.startswith("latency_ms ")
    assert best.measured["latency_ms"] == pytest.approx(measured)


def test_a_users_objective_orders_the_candidates():
    def fewest_macs(candidate):
        return -candidate.arch.macs

    result = search(SPACE, TARGET, BUDGETS, count=3, objective=fewest_macs, generations=1,
                    population=10, verify=False)
    assert not result.objective.proxy and result.objective.name.endswith("fewest_macs")
    macs = [c.arch.macs for c in result.candidates]
    assert macs == sorted(macs)
    with pytest.raises(UsageError, match="finite number"):
        search(SPACE, TARGET, {"latency_ms": 100}, objective=lambda c: float("nan"),
               generations=0, population=4, verify=False)


@pytest.mark.parametrize(("args", "message"), [
    (["--budget", "latncy_ms=1"], "unknown metric 'latncy_ms'"),
    (["--budget", "latency_ms=x"], "is not a number"),
    (["--space", "kws"], "unknown search space 'kws'; choose from: image-classification"),
    (["--target", "ethos-u99"], "target 'ethos-u99'"),
    (["--count", "0"], "0 is less than 1"),
    (["--level", "2"], "level must be an interval coverage from 0.5 to 0.99"),
    (["--workers", "0"], "0 is less than 1"),
    (["--objective", "accuracy"], "unknown objective 'accuracy'"),
    (["--objective", "no_such_module:f"], "cannot import 'no_such_module:f'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    base = {"--space": SPACE, "--target": TARGET, "--budget": "latency_ms=0.3",
            "--out": str(tmp_path / "out"), "--generations": "0", "--population": "4"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--no-verify", *[x for kv in base.items() for x in kv]])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfsage: error: ")
    assert message in lines[0]


def test_out_must_not_be_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--space", SPACE, "-t", TARGET, "--budget", "latency_ms=1",
              "--out", str(tmp_path / "taken")])
    assert exit_.value.code == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    with pytest.raises(UsageError, match="is a file"):
        search(SPACE, TARGET, BUDGETS, out=tmp_path / "taken")


@pytest.mark.vela
def test_the_command_writes_verified_candidates_and_json(tmp_path):
    out = tmp_path / "found"
    result = cli("search", "--space", SPACE, "--target", TARGET, "--budget", "latency_ms=0.3",
                 "--budget", "sram_kib=64", "--budget", "flash_kib=120", "--count", "1",
                 "--generations", "1", "--population", "8", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record == json.loads((out / "results.json").read_text())
    [found] = record["candidates"]
    assert found["status"] == "verified" and (out / found["file"]).is_file()
    assert all(found["measured"][m] <= limit for m, limit in BUDGETS.items())
