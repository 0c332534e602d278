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
