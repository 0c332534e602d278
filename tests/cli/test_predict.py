"""`perfsage predict` and the API over the one pipeline, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.processes import perfsage as cli

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))
TARGET = "ethos-u55-128"


def _error_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("perfsage: error: ")
    return lines[0]


def test_cli_and_api_give_the_same_figures():
    import perfsage

    result = cli("predict", "--json", *map(str, EXAMPLES), "-t", TARGET)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    api = perfsage.predict_many(EXAMPLES, TARGET)
    for row, figures in zip(rows, api, strict=True):
        assert row["predicted"] == pytest.approx({m: figures[m] for m in row["predicted"]},
                                                 rel=1e-6)
        kinds = {n["kind"] for n in row["notes"]}
        # A model that runs mostly on the CPU is reported as such, without an NPU latency.
        assert ("latency_ms" in row["predicted"]) == (not kinds & {"mostly-cpu", "vela-rejects"})
    assert all(r["source"] == "predicted" and r["target"] == TARGET for r in rows)
    assert all(r["exact"] == ["cpu_ops"] for r in rows)
    assert any("latency_ms" in r["predicted"] for r in rows)


def test_notes_come_from_the_api_as_from_the_cli():
    import perfsage

    float_model = next(p for p in EXAMPLES if "float32" in p.name)
    [found] = perfsage.predictions([float_model], TARGET)
    kinds = {n.kind for n in found.notes}
    assert "outside-training" in kinds
    result = cli("predict", "--json", str(float_model), "-t", TARGET)
    notes = json.loads(result.stdout)[0]["notes"]
    assert [n["message"] for n in notes] == [n.message for n in found.notes]
    table = cli("predict", str(float_model), "-t", TARGET)
    assert "perfsage: warning:" in table.stderr and "float model" in table.stderr


def test_several_targets_in_one_call():
    result = cli("predict", "--json", str(EXAMPLES[0]), "-t", TARGET, "-t", "cortex-m-tflm")
    assert result.returncode == 0, result.stderr
    assert [r["target"] for r in json.loads(result.stdout)] == [TARGET, "cortex-m-tflm"]


def test_per_layer_rows_add_up_to_the_totals():
    mobilenet = next(p for p in EXAMPLES if "mobilenet" in p.name)
    result = cli("predict", "--per-layer", "--json", str(mobilenet), "-t", TARGET)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)[0]
    split = report["per_layer"]
    assert "sram_kib" not in split["metrics"]  # a peak is not a sum
    for metric in split["metrics"]:
        rows = sum(r[metric] for r in split["rows"]) + split["overhead"][metric]
        assert rows == pytest.approx(split["total"][metric], rel=1e-9)
        assert split["total"][metric] == pytest.approx(report["predicted"][metric], rel=1e-4)
    assert [r["index"] for r in split["rows"]] == list(range(len(split["rows"])))
    assert all(r["macs"] >= 0 and r["output_shape"] for r in split["rows"])


def test_per_layer_table_is_sorted_by_cost_with_readable_numbers():
    mobilenet = next(p for p in EXAMPLES if "mobilenet" in p.name)
    result = cli("predict", "--per-layer", "--top", "5", str(mobilenet), "-t", TARGET)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(per network)" in out and "more)" in out and "total" in out
    assert "e+" not in out  # no 9.732e+04 cycles
    shares = []
    for line in out.splitlines():
        cells = line.split()
        if len(cells) > 6 and cells[0].isdigit() and cells[1].isupper():
            shares.append(float(cells[5]))
    assert len(shares) == 5 and shares == sorted(shares, reverse=True)


def test_usage_errors_are_one_line_with_exit_2(tmp_path):
    model = str(EXAMPLES[0])
    assert "-t/--target" in _error_line(cli("predict", model))
    assert "--bogus" in _error_line(cli("predict", model, "-t", TARGET, "--bogus"))
    assert "target 'tpu'" in _error_line(cli("predict", model, "-t", "tpu"))
    assert "unknown command" in _error_line(cli("predicts", model))
    assert "one target" in _error_line(cli("predict", model, "-t", TARGET, "-t",
                                                "cortex-m-tflm", "--weights", str(tmp_path)))
    assert "--top" in _error_line(cli("predict", model, "-t", TARGET, "--top", "-1"))
    assert "one target" in _error_line(cli("train", str(tmp_path), "-t", TARGET, "-t",
                                                "cortex-m-tflm", "--out", str(tmp_path)))
    assert "--epochs" in _error_line(cli("train", str(tmp_path), "-t", TARGET, "--out",
                                              str(tmp_path), "--epochs", "0"))


def test_a_bad_file_among_good_ones_fails_alone(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    result = cli("predict", "--json", str(EXAMPLES[0]), str(bad), "-t", TARGET)
    assert result.returncode == 2
    assert len(json.loads(result.stdout)) == 1
    assert str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_api_without_a_target_is_a_clear_error():
    import perfsage
    from perfsage.errors import UsageError

    with pytest.raises(UsageError, match="no target given"):
        perfsage.predict(EXAMPLES[0])
    with pytest.raises(UsageError, match="list of models"):
        perfsage.predict_many(str(EXAMPLES[0]), TARGET)


def test_help_lists_every_command_without_importing_them():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("predict", "measure", "inspect", "targets", "dataset", "train"):
        assert command in result.stdout
    assert cli("dataset", "--help").returncode == 0
    assert "SUBCOMMAND" in _error_line(cli("dataset"))


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_cpu_ops_are_computed_as_vela_counts_them(target):
    import perfsage
    from perfsage.targets import get_target

    for path in EXAMPLES:
        if "float32" in path.name:
            continue  # Vela refuses it: nothing to compare
        [found] = perfsage.predictions([path], target)
        assert "cpu_ops" in found.exact
        assert found.figures["cpu_ops"] == get_target(target).measure(path.read_bytes())["cpu_ops"]


def test_a_model_vela_will_not_run_gets_no_npu_latency():
    import perfsage

    float_model = next(p for p in EXAMPLES if "float32" in p.name)
    [found] = perfsage.predictions([float_model], TARGET)
    kinds = {n.kind for n in found.notes}
    assert "float32" in kinds and kinds & {"vela-rejects", "mostly-cpu"}
    assert "latency_ms" not in found.figures and "sram_kib" in found.figures


def test_a_missing_extra_is_named_in_one_line(monkeypatch, capsys):
    from perfsage.cli import main as cli_main

    def needs_torch(argv):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli_main, "run", needs_torch)
    with pytest.raises(SystemExit) as stop:
        cli_main.main(["train"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'perfsage[train]'" in err[0]


def test_hostile_inputs_end_in_one_line(tmp_path):
    import os
    import shutil

    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    for path, words in ((fifo, "FIFO"), ("/dev/zero", "character device"),
                        (tmp_path, "directory")):
        line = _error_line(cli("predict", str(path), "-t", TARGET, timeout=20))
        assert words in line
    weights = tmp_path / "w"
    shutil.copytree(Path(__file__).resolve().parents[2] / "src" / "perfsage" / "weights"
                    / TARGET, weights)
    config = json.loads((weights / "config.json").read_text())
    config["sigma"][0] = 0.0
    (weights / "config.json").write_text(json.dumps(config))
    line = _error_line(cli("predict", str(EXAMPLES[0]), "-t", TARGET, "--weights", str(weights)))
    assert "config.json" in line
    line = _error_line(cli("dataset", "generate", "--space", "nasbench201", "--count", "1",
                           "--out", str(EXAMPLES[0])))
    assert "is a file" in line


def test_measure_if_unsure_answers_with_the_real_tool():
    import perfsage
    from perfsage.targets import get_target

    kws = next(p for p in EXAMPLES if "kws" in p.name)
    [sure] = perfsage.predictions([kws], TARGET, measure_if_unsure=1e9)
    assert sure.source == "predicted" and sure.interval and sure.level == 0.9
    lo, hi = sure.interval["latency_ms"]
    assert lo < sure.figures["latency_ms"] < hi
    result = cli("predict", "--json", "--measure-if-unsure", "0", str(kws), "-t", TARGET)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["source"] == "measured" and "latency_ms" in row["predicted"]
    truth = get_target(TARGET).measure(kws.read_bytes())
    assert row["measured"] == pytest.approx(truth)
    assert "measured 1 of 1" in result.stderr


def test_tflm_arena_and_flash_are_computed_exactly():
    import perfsage
    from perfsage.targets import get_target

    for path in EXAMPLES:
        if "mobilenet" in path.name:
            continue  # TFLM's reference int8 kernels abort on this model's random weights
        [found] = perfsage.predictions([path], "cortex-m-tflm")
        assert set(found.exact) == {"arena_kib", "flash_kib"}
        truth = get_target("cortex-m-tflm").measure(path.read_bytes())
        assert found.figures == pytest.approx(truth, abs=1e-9)
        assert found.interval["arena_kib"] == (found.figures["arena_kib"],) * 2


def test_latency_is_never_below_the_roofline_floor():
    import perfsage
    from perfsage.api import pipeline
    from perfsage.spaces import get_space

    pipe = pipeline(TARGET)
    space = get_space("random-graphs")
    models = [space.build(space.sample_seeded(5, i)) for i in range(12)]
    for found, data in zip(perfsage.predictions(models, TARGET), models, strict=True):
        if "latency_ms" not in found.figures:
            continue
        model, graph = pipe.read(data)
        floor = pipe.floor_ms(model, graph)
        assert found.figures["latency_ms"] >= floor * (1 - 1e-9)
        raised = [n for n in found.notes if n.kind == "below-physics"]
        if raised:
            assert found.figures["latency_ms"] == pytest.approx(floor)


@pytest.mark.slow
def test_quantize_predicts_a_float_models_int8_version(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFSAGE_CACHE", str(tmp_path))
    float_model = next(p for p in EXAMPLES if "float32" in p.name)
    result = cli("predict", "--json", "--quantize", str(float_model), "-t", TARGET)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["model"] == str(float_model)  # named as given, not as cached
    kinds = {n["kind"] for n in row["notes"]}
    assert not kinds & {"float32", "vela-rejects"} and "latency_ms" in row["predicted"]


def test_a_model_is_named_in_the_table_as_it_is(tmp_path, monkeypatch):
    # Brackets and colons in a file name are not console markup or emoji codes.
    (tmp_path / "kws[bold]:smile:.tflite").write_bytes(EXAMPLES[0].read_bytes())
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "kws[bold]:smile:.tflite", "-t", TARGET)
    assert result.returncode == 0, result.stderr
    assert "kws[bold]:smile:.tflite" in result.stdout


def test_one_read_of_each_model_per_target(monkeypatch):
    # The CLI reads a file first to report a bad one and go on; predicting reuses that read.
    from perfsage.cli.main import run
    from perfsage.pipeline import Pipeline

    calls = []
    original = Pipeline.read
    monkeypatch.setattr(Pipeline, "read", lambda self, *a, **k: calls.append(a) or
                        original(self, *a, **k))
    assert run(["predict", "--json", str(EXAMPLES[0]), "-t", TARGET]) == 0
    assert len(calls) == 1
