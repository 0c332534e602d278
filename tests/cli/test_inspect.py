"""`perfsage inspect` end to end, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.processes import perfsage

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def test_examples_are_bundled():
    assert len(EXAMPLES) >= 3


def test_table_for_several_files():
    result = perfsage("inspect", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    for path in EXAMPLES:
        assert str(path) in result.stdout
    assert "DEPTHWISE_CONV_2D" in result.stdout
    assert "MACs" in result.stdout and "peak activations" in result.stdout


def test_json_matches_the_library():
    from perfsage.graph import analyze, read_model

    result = perfsage("inspect", "--json", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["source"] for r in reports] == list(map(str, EXAMPLES))
    for report, path in zip(reports, EXAMPLES, strict=True):
        cost = analyze(read_model(path))
        assert report["macs"] == cost.macs
        assert report["peak_activation_bytes"] == cost.peak_activation_bytes
        assert len(report["layers"]) == len(cost.layers)
        assert report["layers"][0]["op"] == cost.layers[0].op
        assert report["inputs"][0]["shape"] == list(read_model(path).inputs[0].shape)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"", "too short"),
        (b"not a flatbuffer, just text" * 3, "no 'TFL3' file identifier"),
        ("truncated", "malformed flatbuffer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, problem):
    path = tmp_path / "bad.tflite"
    if content == "truncated":
        data = EXAMPLES[0].read_bytes()
        content = data[: len(data) // 2]
    if content is not None:
        path.write_bytes(content)
    result = perfsage("inspect", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"perfsage: error: {path}: ")
    assert problem in lines[0] or "out of range" in lines[0]
    assert "Traceback" not in result.stderr


def test_good_files_still_reported_beside_a_bad_one(tmp_path):
    result = perfsage("inspect", "--json", str(EXAMPLES[0]), str(tmp_path / "nope.tflite"))
    assert result.returncode == 2
    assert len(json.loads(result.stdout)) == 1
    assert "nope.tflite: no such file" in result.stderr


def test_version_and_help():
    assert perfsage("--version").stdout.startswith("perfsage ")
    assert "inspect" in perfsage("--help").stdout
