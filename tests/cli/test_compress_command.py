"""`perfsage compress` as a user runs it: the file, the figures, the sweep, the bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.processes import perfsage as cli
from perfsage.udc.compress import weight_layers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
KWS = EXAMPLES / "ds_cnn_s_kws_int8.tflite"
TARGET = "ethos-u55-128"


def test_writes_the_model_and_prints_costs_before_and_after(tmp_path):
    out = tmp_path / "small.tflite"
    result = cli("compress", str(KWS), "--sparsity", "0.75", "--bits", "3", "-t", TARGET,
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "predicted" in result.stdout and "flash_kib" in result.stdout
    assert "yours to judge" in result.stderr  # the accuracy cost is the user's call
    small = out.read_bytes()
    assert len(small) == KWS.stat().st_size
    layer = weight_layers(small)[2]
    assert small[layer.start:layer.start + layer.size].count(0) >= 0.7 * layer.size


def test_json_figures_fall_and_measure_agrees(tmp_path):
    result = cli("compress", str(KWS), "--sparsity", "0.9", "--bits", "2", "-t", TARGET,
                 "--json", "--measure")
    assert result.returncode == 0, result.stderr
    [found] = json.loads(result.stdout)["results"]
    predicted, measured = found["predicted"], found["measured"]
    assert "compressed-weights" in found["notes"]
    for figures in (predicted, measured):
        assert figures["after"]["flash_kib"] < 0.6 * figures["before"]["flash_kib"]
    assert predicted["after"]["flash_kib"] == pytest.approx(measured["after"]["flash_kib"],
                                                            rel=0.1)


def test_sweep_covers_the_grid():
    result = cli("compress", str(KWS), "-t", TARGET, "--sweep", "--json")
    assert result.returncode == 0, result.stderr
    [sweep] = json.loads(result.stdout)["sweep"]
    rows = {(r["sparsity"], r["bits"]): r["predicted"]["flash_kib"] for r in sweep["rows"]}
    assert len(rows) == 25
    assert rows[(0.9, 2)] < rows[(0.5, 4)] < rows[(0.0, 8)]


@pytest.mark.parametrize(("args", "message"), [
    (["--sparsity", "0.99"], "sparsity must be a number from 0 to 0.95"),
    (["--bits", "9"], "bits must be a whole number from 1 to 8"),
    (["--bits", "0"], "bits must be a whole number from 1 to 8"),
    (["--per-layer", "missing.json"], "no such file"),
])
def test_bad_input_is_one_line(args, message):
    result = cli("compress", str(KWS), *args, "-t", TARGET)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_unknown_layer_and_missing_model_are_one_line(tmp_path):
    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps({"not_a_layer": [0.5, 4]}))
    for args in ([str(KWS), "--per-layer", str(layers)], [str(tmp_path / "none.tflite")]):
        result = cli("compress", *args, "-t", TARGET)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no weight layer 'not_a_layer'" in cli(
        "compress", str(KWS), "--per-layer", str(layers), "-t", TARGET).stderr
