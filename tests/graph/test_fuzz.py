"""Thousands of truncated and byte-mutated real models: each parses or raises our error."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from helpers import keras_models
from perfsage.errors import ModelFileError
from perfsage.graph import analyze, read_model

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

# Values that make offsets and lengths point far away, backwards or nowhere.
_NASTY = [0, 1, 3, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def _mutants(data: bytes, count: int, seed: int):
    rng = np.random.default_rng(seed)
    n = len(data)
    for i in range(count):
        kind = i % 3
        if kind == 0:  # truncation anywhere
            yield data[: int(rng.integers(0, n))]
            continue
        buf = bytearray(data)
        if kind == 1:  # a few random bytes flipped
            for pos in rng.integers(0, n, int(rng.integers(1, 9))):
                buf[pos] = int(rng.integers(0, 256))
        else:  # a 32-bit word in the flatbuffer's tables replaced by an extreme value
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, n // 4)) * 4
                struct.pack_into("<I", buf, pos, _NASTY[int(rng.integers(len(_NASTY)))])
        yield bytes(buf)


def _check_all(data: bytes, count: int, seed: int) -> dict[str, int]:
    outcome = {"parsed": 0, "rejected": 0}
    for mutant in _mutants(data, count, seed):
        try:
            model = read_model(mutant, name="mutant.tflite")
        except ModelFileError as exc:
            assert str(exc).startswith("mutant.tflite: ")
            outcome["rejected"] += 1
            continue
        analyze(model)  # whatever parses must also analyse without crashing
        outcome["parsed"] += 1
    return outcome


def test_fuzz_single_subgraph_model(converted):
    data = converted("convnet-int8", lambda: keras_models.zoo("convnet")).read_bytes()
    outcome = _check_all(data, 3000, seed=1)
    # Both outcomes occur: mutations in weights parse, mutations in tables get rejected.
    assert outcome["parsed"] > 100 and outcome["rejected"] > 1000, outcome


def test_fuzz_control_flow_model(converted):
    data = converted("while", keras_models.while_loop_function, quantize="float32").read_bytes()
    outcome = _check_all(data, 1500, seed=2)
    assert outcome["rejected"] > 500, outcome
