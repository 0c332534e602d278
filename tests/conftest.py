"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Callable[..., Path]:
    """Build a Keras reference model once per session and return its .tflite path.

    Call as ``converted(name, make_model, **convert_kwargs)``; ``make_model`` is only called
    the first time a name is asked for.
    """
    pytest.importorskip("tensorflow")
    from helpers import keras_models

    folder = tmp_path_factory.mktemp("converted")
    cache: dict[str, Path] = {}

    def get(name: str, make_model: Callable, **kwargs) -> Path:
        if name not in cache:
            path = folder / f"{name}.tflite"
            path.write_bytes(keras_models.convert(make_model(), **kwargs))
            cache[name] = path
        return cache[name]

    return get


@pytest.fixture(scope="session")
def labelled(tmp_path_factory) -> Path:
    """A dataset of 80 small models (two spaces) labelled for ethos-u55-128 by Vela."""
    from perfsage.dataset.annotate import annotate
    from perfsage.dataset.generate import generate

    folder = tmp_path_factory.mktemp("labelled")
    generate(folder, "keyword-spotting", 50, seed=5)
    generate(folder, "nasbench201", 30, seed=5)
    annotate(folder, ["ethos-u55-128"], workers=2)
    return folder


#: Fixtures that run a real tool or train a network, and the marker their users get, so
#: `pytest -m "not vela and not training"` is a quick loop while editing.
_MARK_BY_FIXTURE = {"labelled": ("vela",), "trained": ("vela", "training"),
                    "trained_each_readout": ("vela", "training"), "fitted": ("training",)}
#: Test modules that exercise one real tool throughout.
_MARK_BY_MODULE = {"test_ethos_u": "vela", "test_vela_support": "vela", "test_annotate": "vela",
                   "test_measure_cli": "vela", "test_tflm": "tflm", "test_litert_cpu": "litert"}


def pytest_collection_modifyitems(items) -> None:
    """Mark tests that run Vela, TFLite Micro, LiteRT or training (see pyproject markers)."""
    for item in items:
        names = set()
        for fixture, markers in _MARK_BY_FIXTURE.items():
            if fixture in item.fixturenames:
                names.update(markers)
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in _MARK_BY_MODULE:
            names.add(_MARK_BY_MODULE[module])
        for name in sorted(names):
            item.add_marker(name)
