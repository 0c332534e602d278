"""The conversion cache: keys that change with everything the output depends on."""

from __future__ import annotations

from perfsage.convert import cache


def test_key_follows_source_format_options_and_samples(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    base = cache.key(model, "onnx", "", None)
    assert base == cache.key(model, "onnx", "", None)
    assert base != cache.key(model, "pt2", "", None)
    assert base != cache.key(model, "onnx", "x", None)
    assert base != cache.key(model, "onnx", "", b"samples")
    model.write_bytes(b"two")
    assert base != cache.key(model, "onnx", "", None)


def test_folder_key_covers_every_file(tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v.data").write_bytes(b"1")
    before = cache.key(folder, "savedmodel", "", None)
    (folder / "variables" / "v.data").write_bytes(b"2")
    assert cache.key(folder, "savedmodel", "", None) != before


def test_store_and_lookup_under_perfsage_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFSAGE_CACHE", str(tmp_path / "c"))
    assert cache.lookup("abc", "m.onnx") is None
    path = cache.store("abc", "m.onnx", b"TFL3 bytes")
    assert path == tmp_path / "c" / "converted" / "abc" / "m.onnx.tflite"
    assert cache.lookup("abc", "m.onnx") == path and path.read_bytes() == b"TFL3 bytes"
    assert [p.name for p in path.parent.iterdir()] == ["m.onnx.tflite"]
