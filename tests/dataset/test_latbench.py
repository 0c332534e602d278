"""The LatBench loader: arch strings to the right cells, clear errors, float32 builds, splits.

The featurised GraphSet (``perfsage.predictors.latbench``) is tested here too, on the same files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from perfsage.dataset import latbench
from perfsage.errors import UsageError
from perfsage.graph import read_model
from perfsage.predictors import latbench as graphs
from perfsage.spaces.nasbench201 import OPS, all_archs, arch_string, parse_arch

SHARED = Path(__file__).resolve().parents[3] / "shared/data/latbench"
DESKTOP = SHARED / "desktop-cpu-core-i7-7820x-fp32.csv"

ALL_CONV = arch_string(["nor_conv_3x3"] * 6)
SKIP_ONLY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
# Node 1's convolution feeds nothing that reaches the output: it must be pruned.
DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
ONE_1X1 = "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
POOL_CHAIN = "|avg_pool_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|avg_pool_3x3~2|"
#: CONV_2D outside the cells: stem plus three per reduction block (two of them).
SKELETON_CONVS = 7
SKELETON_POOLS = 2
CELLS = 15


def _vector(arch: str) -> str:
    return "".join(str(OPS.index(op)) for op in parse_arch(arch))


def _write(path: Path, rows: list[tuple[str, str, str]],
           header: str = "arch_str,arch_vector,latency_s") -> Path:
    path.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    return path


@pytest.fixture
def small_csv(tmp_path) -> Path:
    archs = [SKIP_ONLY, DEAD_CONV, ONE_1X1, POOL_CHAIN, ALL_CONV]
    return _write(tmp_path / "dev-fp32.csv",
                  [(a, _vector(a), f"{0.001 * (i + 1):.6f}") for i, a in enumerate(archs)])


def test_arch_string_maps_to_its_cell_and_back():
    ops = parse_arch(ALL_CONV)
    assert ops == ("nor_conv_3x3",) * 6
    mixed = ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
             "+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|")
    assert parse_arch(mixed) == ("avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1",
                                 "none", "nor_conv_3x3")
    assert latbench.config_of(mixed) == {"arch": mixed, "seed": latbench.WEIGHT_SEED}
    assert arch_string(parse_arch(mixed)) == mixed
    index = latbench.arch_index()
    assert len(index) == 15625 and all_archs()[index[mixed]] == mixed
    # all_archs enumerates the six edge ops in base 5, last edge fastest.
    assert index[mixed] == int(_vector(mixed), 5)


def test_reads_canonical_archs_and_latency_in_ms(small_csv):
    archs, latency_ms = latbench.read_csv(small_csv)
    assert archs == [SKIP_ONLY, DEAD_CONV, ONE_1X1, POOL_CHAIN, ALL_CONV]
    np.testing.assert_allclose(latency_ms, [1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize(("rows", "header", "message"), [
    ([], "arch,latency_s", "missing column(s) arch_str, arch_vector"),
    ([], "arch_str,arch_vector,latency_s", "no rows"),
    ([(SKIP_ONLY, "000101", "0.001")], None, "arch_vector '000101' disagrees"),
    ([("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "300000", "0.001")], None,
     "not a NAS-Bench-201 cell string"),
    ([(SKIP_ONLY, _vector(SKIP_ONLY), "-1")], None, "not a positive number"),
    ([(SKIP_ONLY, _vector(SKIP_ONLY), "fast")], None, "not a positive number"),
    ([(SKIP_ONLY, _vector(SKIP_ONLY), "0.001")] * 2, None, "repeats line 2"),
])
def test_bad_csv_gives_one_clear_line(tmp_path, rows, header, message):
    path = _write(tmp_path / "bad.csv", rows, header or "arch_str,arch_vector,latency_s")
    with pytest.raises(UsageError) as error:
        latbench.read_csv(path)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read LatBench CSV"):
        latbench.read_csv(tmp_path / "absent.csv")


def _op_counts(arch: str) -> Counter:
    model = read_model(latbench.build(arch))
    sub = model.subgraphs[0]
    # Activations and weights are float32 (MEAN's axes tensor is int32 by definition).
    assert {sub.tensors[t].dtype for op in sub.operators for t in op.outputs} == {"float32"}
    assert {sub.tensors[op.inputs[1]].dtype for op in sub.operators
            if op.opcode == "CONV_2D"} == {"float32"}
    return Counter(op.opcode for op in model.subgraphs[0].operators)


@pytest.mark.parametrize(("arch", "convs", "pools", "adds"), [
    (SKIP_ONLY, 0, 0, 0),
    (DEAD_CONV, 0, 0, 0),
    (ONE_1X1, 1, 0, 0),
    (POOL_CHAIN, 0, 3, 0),
    (ALL_CONV, 6, 0, 3),
])
def test_float32_build_has_the_cell_ops(arch, convs, pools, adds):
    counts = _op_counts(arch)
    assert counts["CONV_2D"] == SKELETON_CONVS + CELLS * convs
    assert counts["AVERAGE_POOL_2D"] == SKELETON_POOLS + CELLS * pools
    assert counts["ADD"] == 2 + CELLS * adds  # two residual reduction blocks
    assert counts["FULLY_CONNECTED"] == 1


def test_graphset_from_a_subset_is_cached(small_csv, tmp_path, monkeypatch):
    data = graphs.load_latbench(small_csv, tmp_path / "cache", workers=1)
    assert data.target == "latbench-dev-fp32" and len(data) == 5
    assert set(data.spaces) == {"nasbench201"}
    np.testing.assert_allclose(data.labels["latency_ms"], [1.0, 2.0, 3.0, 4.0, 5.0])
    # The dead convolution is pruned, so those two cells build the same graph.
    assert data.hashes[0] == data.hashes[1] != data.hashes[4]
    assert data.graphs[4].globals[0] > data.graphs[2].globals[0]  # more MACs
    assert [all_archs()[i] for i in data.model_ids] == latbench.read_csv(small_csv)[0]

    monkeypatch.setattr(graphs, "CHUNK", 2)
    calls = []
    real = graphs._featurize
    monkeypatch.setattr(graphs, "_featurize", lambda task: calls.append(task) or real(task))
    again = graphs.load_latbench(small_csv, tmp_path / "cache", workers=1, limit=3)
    assert len(calls) == 1  # only the builder spot-check, no rebuild
    assert list(again.hashes) == list(data.hashes[:3])
    np.testing.assert_array_equal(again.graphs[2].nodes, data.graphs[2].nodes)


def test_draws_follow_brp_nas_protocol():
    split = latbench.draws(15284, seed=0)
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 900, "val": 100, "test": 14284}
    everything = np.concatenate(list(split.values()))
    assert len(np.unique(everything)) == 15284
    np.testing.assert_array_equal(latbench.draws(15284, 0)["train"], split["train"])
    assert not np.array_equal(latbench.draws(15284, 1)["train"], split["train"])
    with pytest.raises(UsageError, match="test set"):
        latbench.draws(1000, 0)


@pytest.mark.skipif(not DESKTOP.exists(), reason="shared LatBench data not present")
def test_desktop_file_holds_every_cell_with_a_live_output():
    archs, latency_ms = latbench.read_csv(DESKTOP)
    assert len(archs) == 15284 and np.all((latency_ms > 0.5) & (latency_ms < 50))

    def live(arch: str) -> bool:
        on = [op != "none" for op in parse_arch(arch)]
        node2 = on[1] or (on[0] and on[2])
        return on[3] or (on[0] and on[4]) or (node2 and on[5])

    # LatBench left out exactly the 341 cells whose output node is disconnected.
    assert set(archs) == {a for a in all_archs() if live(a)}
