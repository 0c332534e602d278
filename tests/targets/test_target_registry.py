"""The registry, settings hashes and the machine lock: fast, no tools run."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import subprocess
import sys
import threading

import pytest

from perfsage.errors import PerfSageError, UnknownTargetError
from perfsage.targets import get_target, register, settings_hash, target_names
from perfsage.targets.lock import machine_lock
from perfsage.targets.registry import unregister

ALL = ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256", "cpu-litert", "cortex-m-tflm"]


def test_every_target_is_registered_and_describes_itself():
    assert target_names() == ALL
    for name in ALL:
        target = get_target(name)
        assert target.name == name
        assert target.metrics and all(m.unit and m.description for m in target.metrics.values())
        assert target.settings["target"] == name
        assert target.settings["tool_version"]


def test_ethos_u_metrics_follow_the_brief():
    common = {"latency_ms", "npu_cycles", "sram_kib", "flash_kib", "cpu_ops", "energy_mj"}
    assert set(get_target("ethos-u55-128").metrics) == common
    assert set(get_target("ethos-u65-256").metrics) == common | {"dram_kib"}
    assert set(get_target("ethos-u85-256").metrics) == common | {"dram_kib"}
    assert get_target("ethos-u85-256").settings["system_config"] == "Ethos_U85_SYS_DRAM_Mid"


def test_unknown_target_lists_the_valid_names():
    with pytest.raises(UnknownTargetError) as info:
        get_target("ethos-u99")
    assert isinstance(info.value, PerfSageError)
    assert str(info.value) == f"unknown target 'ethos-u99'; choose from: {', '.join(ALL)}"


def test_listing_names_imports_no_tool():
    code = ("import sys; from perfsage.targets import target_names; target_names(); "
            "print(any(m.split('.')[0] in ('ethosu', 'tflite_micro', 'ai_edge_litert') "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_register_adds_a_target_by_class():
    from fake_targets import Scripted

    register("scripted", Scripted)
    try:
        assert get_target("scripted").measure(b"ok 3") == {"value": 3.0}
    finally:
        unregister("scripted")
    assert "scripted" not in target_names()


def test_settings_hash_is_sha256_of_canonical_json():
    assert settings_hash({"b": [1, 2], "a": "x"}) == hashlib.sha256(
        b'{"a":"x","b":[1,2]}').hexdigest()
    assert settings_hash({"a": "x", "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": "x"})


def test_settings_hash_is_stable_across_instances_and_processes():
    for name in ALL:
        assert get_target(name).settings_hash == get_target(name).settings_hash
    code = ("from perfsage.targets import get_target; "
            "print(get_target('ethos-u55-128').settings_hash)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == get_target("ethos-u55-128").settings_hash


def test_settings_hash_changes_with_settings():
    hashes = {get_target(name).settings_hash for name in ALL}
    assert len(hashes) == len(ALL)
    assert get_target("cpu-litert", runs=10).settings_hash != get_target("cpu-litert").settings_hash
    assert (get_target("cortex-m-tflm", arena_limit_bytes=2**20).settings_hash
            != get_target("cortex-m-tflm").settings_hash)


def test_production_cpu_timing_uses_at_least_50_runs():
    assert get_target("cpu-litert").settings["runs"] >= 50


def _hold(exclusive: bool, started, release, released) -> None:
    with machine_lock(exclusive=exclusive):
        started.set()
        release.wait(30)
        released.set()  # still inside the lock: a waiter let in later sees it set


def _got_in_while_held(holder_exclusive: bool, exclusive: bool, *, expect_in: bool) -> bool:
    """Whether the lock is granted while another process holds it (events, not timings).

    Expecting to wait, the holder is told to let go a moment after we start waiting; a
    waiter let in only then finds ``released`` set. Expecting to get in, the holder keeps
    the lock until we are in (or 30 s pass, and then we find ``released`` set).
    """
    ctx = mp.get_context("spawn")
    started, release, released = ctx.Event(), ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(holder_exclusive, started, release, released))
    holder.start()
    try:
        assert started.wait(30)
        if not expect_in:
            threading.Timer(0.5, release.set).start()
        with machine_lock(exclusive=exclusive):
            return not released.is_set()
    finally:
        release.set()
        holder.join(10)


def test_exclusive_lock_excludes_everyone_shared_does_not(private_lock_dir):
    assert not _got_in_while_held(holder_exclusive=True, exclusive=False, expect_in=False)
    assert not _got_in_while_held(holder_exclusive=False, exclusive=True, expect_in=False)
    assert _got_in_while_held(holder_exclusive=False, exclusive=False, expect_in=True)
    assert (private_lock_dir / "measure.lock").exists()
