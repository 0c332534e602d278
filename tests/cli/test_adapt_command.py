"""`perfsage adapt` as a user runs it: one-line errors, the folder `predict` reads, resuming.

Labels come from Vela (deterministic), so a resumed run can be compared with an
uninterrupted one bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

import numpy as np
import pytest

from helpers.processes import perfsage

FEW_MODELS = 8
#: A small candidate search, so each run takes seconds.
QUICK = ("--folds", "3", "--ridges", "0.01", "--steps", "10,20")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A user's folder: eight models and their Vela U65 latency and SRAM in board.csv."""
    from perfsage.spaces import get_space
    from perfsage.targets.ethos_u import EthosU65_256

    folder = tmp_path_factory.mktemp("board")
    space, rng, vela = get_space("keyword-spotting"), np.random.default_rng(7), EthosU65_256()
    lines = ["model,latency_ms,sram_kib"]
    for i in range(FEW_MODELS):
        data = space.build(space.sample(rng))
        (folder / f"m{i}.tflite").write_bytes(data)
        found = vela.measure(data)
        lines.append(f"m{i}.tflite,{found['latency_ms']!r},{found['sram_kib']!r}")
    (folder / "board.csv").write_text("\n".join(lines) + "\n")
    return folder


def _error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("perfsage: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("csv", "expected"), [
    ("model,latency_ms\nm0.tflite,1.0\n", "distinct model(s); adapting needs at least 5"),
    ("model,latency_ms,speed\nm0.tflite,1,2\n", "unknown column 'speed'"),
    ("model,latency_ms\nnot-there.tflite,1.0\n", "model file 'not-there.tflite' not found"),
    ("name,latency_ms\nm0.tflite,1.0\n", "no 'model' column"),
    ("model,latency_ms\nm0.tflite,fast\n", "latency_ms 'fast' is not a number"),
    ("model,latency_ms\nm0.tflite,-1\n", "must be a finite number, 0 or more"),
])
def test_bad_measurements_are_one_line(board, tmp_path, csv, expected):
    path = board / f"bad-{abs(hash(expected))}.csv"
    path.write_text(csv)
    assert expected in _error_line(perfsage("adapt", str(path), "--base", "none", "--out",
                                            str(tmp_path / "w")))


def test_a_missing_csv_and_an_unknown_base_are_one_line(board, tmp_path):
    assert "no such measurements file" in _error_line(
        perfsage("adapt", str(tmp_path / "none.csv"), "--base", "none", "--out",
                 str(tmp_path / "w")))
    assert "no PerfSAGE weights ship for target 'my-npu'" in _error_line(
        perfsage("adapt", str(board / "board.csv"), "--base", "my-npu", "--out",
                 str(tmp_path / "w")))


@pytest.mark.vela
@pytest.mark.training
def test_predict_reads_the_adapted_folder_without_a_target(board, tmp_path):
    out = tmp_path / "w"
    done = perfsage("adapt", str(board / "board.csv"), "--base", "ethos-u55-128", "--name",
                    "my-board", "--out", str(out), *QUICK, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["name"] == "my-board" and report["models"] == FEW_MODELS
    predicted = perfsage("predict", str(board / "m0.tflite"), "--weights", str(out), "--json")
    assert predicted.returncode == 0, predicted.stderr
    (row,) = json.loads(predicted.stdout)
    assert row["target"] == "my-board"
    assert set(row["predicted"]) == {"latency_ms", "sram_kib"}
    assert all(np.isfinite(v) and v > 0 for v in row["predicted"].values())
    mismatch = perfsage("predict", str(board / "m0.tflite"), "--weights", str(out), "-t",
                        "ethos-u55-128")
    assert "weights are for target 'my-board'" in _error_line(mismatch)


@pytest.mark.vela
@pytest.mark.training
def test_a_killed_adapt_resumes_to_the_same_weights(board, tmp_path):
    args = ["adapt", str(board / "board.csv"), "--base", "ethos-u55-128", "--name", "b",
            *QUICK]
    whole = perfsage(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "resumed"
    _kill_after_runs([sys.executable, "-m", "perfsage", *args, "--out", str(out)],
                     out / "adapt-checkpoint.json", runs=4)
    finished = json.loads((out / "adapt-checkpoint.json").read_text())["runs"]
    assert 4 <= len(finished) and not (out / "config.json").exists()  # killed mid-search
    resumed = perfsage(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("model.safetensors", "config.json"):
        first = (tmp_path / "whole" / name).read_bytes()
        again = (out / name).read_bytes()
        if name == "config.json":  # the folders differ only in where they are
            first, again = (json.loads(x) for x in (first, again))
            assert first == again
        else:
            assert first == again


def _kill_after_runs(command: list[str], checkpoint, runs: int) -> None:
    """Start ``command``; kill -9 it once its checkpoint holds ``runs`` finished runs."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while proc.poll() is None:
            time.sleep(0.1)
            with suppress(OSError, ValueError):
                if len(json.loads(checkpoint.read_text())["runs"]) >= runs:
                    break
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
