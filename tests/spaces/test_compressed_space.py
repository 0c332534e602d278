"""Any space with compressed weights: the same architectures, the plan in the config."""

from __future__ import annotations

import hashlib

import pytest

from perfsage.errors import UsageError
from perfsage.graph import read_model
from perfsage.graph.hashing import graph_hash
from perfsage.graph.weight_stats import weight_stats
from perfsage.spaces import get_space
from perfsage.spaces.compressed import KEY

SPACE = "keyword-spotting"


def test_configs_are_the_base_ones_plus_a_plan():
    base, small = get_space(SPACE), get_space(SPACE + "+compressed")
    compressed = 0
    for i in range(6):
        config = small.sample_seeded(0, i)
        plan = config.pop(KEY)
        assert config == base.sample_seeded(0, i)  # the same architecture, drawn the same way
        dense, data = base.build(config), small.build({**config, KEY: plan})
        assert data == small.build({**config, KEY: plan})  # a pure function of the config
        assert graph_hash(read_model(data)) == graph_hash(read_model(dense))
        assert len(data) == len(dense)
        if plan["sparsity"] or plan["bits"] < 8 or plan["per_layer"]:
            assert data != dense
            compressed += weight_stats(read_model(data)).compressed_share() > 0
    assert compressed  # most draws compress something that the statistics see


def test_unknown_names_still_fail():
    with pytest.raises(UsageError, match="unknown search space 'nope\\+compressed'"):
        get_space("nope+compressed")


def test_a_dataset_of_them_rebuilds_exactly(tmp_path):
    from perfsage.dataset.generate import generate
    from perfsage.dataset.store import Store

    name = SPACE + "+compressed"
    summary = generate(tmp_path, name, 4, seed=3)
    assert summary.stored == 4
    with Store(tmp_path) as store:
        for row in store.models(name):
            assert KEY in row["config"]
            data = store.model_bytes(row["id"])  # rebuilt from the config, checked by hash
            assert hashlib.sha256(data).hexdigest() == row["model_sha256"]


@pytest.mark.vela
def test_vela_sees_the_compression():
    from perfsage.targets.registry import get_target

    small = get_space(SPACE + "+compressed")
    config = next(c for c in (small.sample_seeded(0, i) for i in range(20))
                  if c[KEY]["sparsity"] >= 0.5)
    dense = get_space(SPACE).build({k: v for k, v in config.items() if k != KEY})
    vela = get_target("ethos-u55-128")
    assert vela.measure(small.build(config))["flash_kib"] < vela.measure(dense)["flash_kib"]
