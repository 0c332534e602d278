"""Every search space: deterministic, valid in every real tool, documented ranges."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from perfsage.errors import UsageError
from perfsage.graph import analyze, read_model
from perfsage.spaces import COVERAGE_SPACES, get_space, space_names

SPACES = space_names()


def _digest(space: str, seed: int, idx: int) -> tuple[str, str]:
    s = get_space(space)
    config = s.sample_seeded(seed, idx)
    return json.dumps(config, sort_keys=True), hashlib.sha256(s.build(config)).hexdigest()


def test_registry_lists_the_task_spaces_and_the_coverage_space():
    assert set(SPACES) == {"image-classification", "keyword-spotting", "super-resolution",
                           "object-detection", "nasbench201", "random-graphs", "zoo"}
    with pytest.raises(UsageError, match="choose from: image-classification"):
        get_space("imagenet")


@pytest.mark.slow
def test_same_seed_same_bytes_in_another_process():
    code = ("import json, sys; sys.path.insert(0, 'tests'); from spaces.test_spaces import "
            f"_digest; print(json.dumps([_digest(s, 7, i) for s in {SPACES!r} "
            "for i in range(2)]))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    here = [list(_digest(s, 7, i)) for s in SPACES for i in range(2)]
    assert json.loads(other) == here


@pytest.mark.parametrize("space", SPACES)
def test_configs_are_small_json_and_seeds_differ(space):
    s = get_space(space)
    a, b = s.sample_seeded(0, 0), s.sample_seeded(0, 1)
    assert a != b
    assert s.sample_seeded(0, 0) == a
    assert len(json.dumps(a)) < 4096
    assert s.build(a) != s.build(b)


def vela_unsupported(model) -> int:
    """Operators whose type Vela cannot run on the NPU at all (not a quantisation matter)."""
    from ai_edge_litert import schema_py_generated as fb
    from ethosu.vela.tflite_mapping import builtin_operator_map
    from ethosu.vela.tflite_supported_operators import TFLiteSupportedOperators

    codes = {name: code for name, code in vars(fb.BuiltinOperator).items()}
    supported = TFLiteSupportedOperators.supported_operators
    return sum(builtin_operator_map[codes[op.opcode]][0] not in supported
               for op in model.main.operators)


@pytest.fixture(scope="module")
def vela():
    from perfsage.targets import get_target

    return get_target("ethos-u55-128")


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES)
def test_models_parse_run_in_litert_and_compile_with_vela(space, vela):
    from ai_edge_litert.interpreter import Interpreter

    s = get_space(space)
    for idx in range(2):
        config = s.sample_seeded(3, idx)
        # Small inputs keep the test fast; the builder is the same at every size.
        for key, small in (("resolution", 96), ("height", 64), ("width", 64)):
            if key in config and config[key] > small:
                config[key] = small
        data = s.build(config)
        model = read_model(data)
        assert analyze(model).macs > 0
        interp = Interpreter(model_content=data, num_threads=1)
        interp.allocate_tensors()
        for detail in interp.get_input_details():
            info = np.iinfo(detail["dtype"])
            interp.set_tensor(detail["index"], np.random.default_rng(0).integers(
                info.min, info.max, detail["shape"], dtype=detail["dtype"]))
        interp.invoke()
        outputs = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
        assert all(np.unique(o).size > 1 for o in outputs), "output collapsed to one value"
        figures = vela.measure(data)
        assert figures["latency_ms"] > 0
        # Task spaces: only operator types Vela lacks (DEPTH_TO_SPACE on Ethos-U55) may stay
        # on the CPU. Coverage spaces also draw settings Vela leaves there (a x3 resize, a
        # MEAN over channels of several patches, float models).
        if space in COVERAGE_SPACES:
            assert figures["cpu_ops"] >= vela_unsupported(model)
        else:
            assert figures["cpu_ops"] == vela_unsupported(model), f"{space}: ops left on the CPU"


def test_nasbench201_arch_strings_round_trip():
    from perfsage.spaces.nasbench201 import all_archs, arch_string, parse_arch

    archs = all_archs()
    assert len(archs) == len(set(archs)) == 15625
    for arch in archs[::997]:
        assert arch_string(parse_arch(arch)) == arch
    with pytest.raises(UsageError, match="not a NAS-Bench-201 cell string"):
        parse_arch("|conv~0|+|")


def test_nasbench201_cell_ops_appear_in_the_graph():
    s = get_space("nasbench201")
    conv3 = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # output node empty
    pools = "|avg_pool_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|avg_pool_3x3~2|"
    ops_conv3 = [op.opcode for op in read_model(s.build({"arch": conv3, "seed": 0})).main.operators]
    ops_pools = [op.opcode for op in read_model(s.build({"arch": pools, "seed": 0})).main.operators]
    # The disconnected cell passes its input on: only stem, reductions and classifier remain.
    assert ops_conv3.count("CONV_2D") == 1 + 2 * 3
    # 15 cells x 3 pools, plus one 2x2 pool per reduction shortcut.
    assert ops_pools.count("AVERAGE_POOL_2D") == 15 * 3 + 2


@pytest.mark.slow
def test_spaces_span_four_orders_of_magnitude_of_macs():
    # The extremes come from the cheap-to-build spaces: keyword spotting at the bottom,
    # super resolution at the top; 100 samples each, 20 of the others.
    macs = [analyze(read_model(get_space(s).build(get_space(s).sample_seeded(1, i)))).macs
            for s in SPACES
            for i in range(100 if s in ("keyword-spotting", "super-resolution") else 20)]
    assert max(macs) / min(macs) >= 1e4
