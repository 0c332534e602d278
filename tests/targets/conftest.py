"""Small converter-made models for the target tests, built once per session."""

from __future__ import annotations

import pytest


def _conv_pair(width: int):
    from helpers.keras_models import keras

    k = keras()
    inp = k.Input((32, 32, 3), batch_size=1)
    x = k.layers.Conv2D(width, 3, padding="same", activation="relu")(inp)
    x = k.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    return k.Model(inp, x)


@pytest.fixture(scope="session")
def tflite_models() -> dict[str, bytes]:
    """int8 models: the reader's op zoo, a dense net, and one conv net at widths 8/16/32."""
    pytest.importorskip("tensorflow")
    from helpers.keras_models import convert, zoo

    models = {name: convert(zoo(name)) for name in ("convnet", "dense")}
    for width in (8, 16, 32):
        models[f"conv{width}"] = convert(_conv_pair(width))
    return models


@pytest.fixture
def private_lock_dir(tmp_path, monkeypatch):
    """Point the machine lock at a private folder, for tests of the lock itself."""
    monkeypatch.setenv("PERFSAGE_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path / "locks"
