"""Every conversion test writes its cache under a temporary folder, never the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PERFSAGE_CACHE", str(tmp_path_factory.getbasetemp() / "perfsage-cache"))
