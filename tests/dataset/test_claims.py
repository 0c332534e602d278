"""Claims: annotate runs on one store split the work; a dead run's claims are taken over."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest

from perfsage.dataset.annotate import annotate, missing_labels
from perfsage.dataset.claims import Claimant
from perfsage.dataset.generate import generate
from perfsage.dataset.store import Store

TARGET = "cortex-m-tflm"  # TFLite Micro: a real tool, and the cheapest one


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("claims")
    generate(folder, "keyword-spotting", 40, seed=2)
    return folder


@pytest.fixture
def dataset(tmp_path, models):
    shutil.copytree(models, tmp_path / "d")
    return tmp_path / "d"


def test_two_annotate_processes_split_the_work(dataset, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"run{i}.json" for i in range(2)]
    from helpers.annotate_runs import annotate_together

    runs = [ctx.Process(target=annotate_together, args=(barrier, str(dataset), [TARGET], str(o)))
            for o in outs]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert [run.exitcode for run in runs] == [0, 0]
    reports = [json.loads(o.read_text()) for o in outs]
    with Store(dataset) as store:
        labels = store.labels(TARGET)
        assert store.claims() == []  # both runs released what they held
    assert len(labels) == 40 and {x.status for x in labels} == {"ok"}
    # Every model measured once: the runs' measurements add up to the model count, and
    # each label names the run that measured it.
    assert sum(r["done"] for r in reports) == 40
    assert all(r["done"] > 0 for r in reports)  # both started together: both got work
    by = Counter(x.measured_by for x in labels)
    assert by == {r["claimant"]: r["done"] for r in reports}


def test_live_claims_are_left_alone_and_killed_ones_taken_over(dataset):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from helpers.annotate_runs import claim_and_hold; "
         f"claim_and_hold(sys.argv[1], {TARGET!r}, 5)", str(dataset)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in sys.path if p)})
    try:
        held = set(json.loads(holder.stdout.readline()))
        assert len(held) == 5
        first = annotate(dataset, [TARGET], workers=1)
        assert (first.total, first.done) == (35, 35)  # the live holder's five are left to it
        assert first.elsewhere == 5
        with Store(dataset) as store:
            assert {x.model_id for x in store.labels(TARGET)}.isdisjoint(held)
            assert {c.model_id for c in store.claims()} == held
            assert missing_labels(store, [TARGET]) == {frozenset([TARGET]): sorted(
                held, key=store.model_ids_by_hash().index)}
            assert missing_labels(store, [TARGET], claimed=store.live_claims([TARGET])) == {}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    second = annotate(dataset, [TARGET], workers=1)
    assert (second.total, second.done, second.elsewhere) == (5, 5, 0)
    with Store(dataset) as store:
        assert len(store.labels(TARGET)) == 40 and store.claims() == []


def test_claims_skip_labelled_and_claimed_models_and_expire(models, tmp_path):
    shutil.copytree(models, tmp_path / "d")
    me = Claimant.this_process()
    elsewhere = Claimant("another-host", 1, "0")  # cannot be checked: trusted for its lease
    settings = {TARGET: "s", "ethos-u55-128": "v"}
    with Store(tmp_path / "d") as store:
        ids = store.model_ids_by_hash()
        claimed, passed = store.claim(iter(ids), [TARGET], elsewhere, count=2,
                                      settings_hashes=settings, lease_s=600)
        assert (claimed, passed) == (ids[:2], 0)
        expired, _ = store.claim(iter(ids), [TARGET], elsewhere, count=1,
                                 settings_hashes=settings, lease_s=-1)
        assert expired == ids[2:3]
        # Claimed on another target only: free for this one, and for both together not.
        store.claim(iter(ids[3:4]), ["ethos-u55-128"], elsewhere, count=1,
                    settings_hashes=settings, lease_s=600)
        assert store.live_claims([TARGET]) == {(ids[0], TARGET), (ids[1], TARGET)}
        mine, passed = store.claim(iter(ids), [TARGET, "ethos-u55-128"], me, count=2,
                                   settings_hashes=settings, lease_s=600)
        assert (mine, passed) == ([ids[2], ids[4]], 3)  # the expired claim is taken over
        owners = {(c.model_id, c.target): c.claimed_by for c in store.claims()}
        assert owners[ids[2], TARGET] == str(me) and owners[ids[0], TARGET] == str(elsewhere)
        assert len(owners) == 2 + 1 + 2 * 2
        store.release_claims(me)
        assert {c.claimed_by for c in store.claims()} == {str(elsewhere)}


def test_a_claimant_is_alive_only_while_its_process_runs():
    me = Claimant.this_process()
    assert me.alive() is True and Claimant.parse(str(me)) == me
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    assert Claimant(me.host, int(done.stdout), me.started).alive() is False
    if me.started:  # Linux: a reused pid has another start time
        assert Claimant(me.host, me.pid, str(int(me.started) + 1)).alive() is False
    assert Claimant("another-host", me.pid, me.started).alive() is None
