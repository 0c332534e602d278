"""Format detection, the .tflite pass-through and the errors before any converter runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from perfsage.convert import as_tflite, detect, formats, is_tflite
from perfsage.errors import ConversionError

TFLITE_HEAD = b"\x18\x00\x00\x00TFL3" + b"\x00" * 24


def test_detect_by_content_and_name(tmp_path):
    (tmp_path / "m.tflite").write_bytes(TFLITE_HEAD)
    (tmp_path / "named.onnx").write_bytes(TFLITE_HEAD)  # content wins over the name
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "m.pt2").write_bytes(b"PK\x03\x04")
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04")
    (tmp_path / "weights.bin").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 8)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    found = {p.name: detect(p) for p in tmp_path.iterdir()}
    assert found == {"m.tflite": None, "named.onnx": None, "m.onnx": formats.ONNX,
                     "m.pt2": formats.PT2, "m.keras": formats.KERAS, "weights.bin": formats.H5,
                     "saved": formats.SAVED_MODEL, "empty": None}
    assert is_tflite(tmp_path / "m.tflite") and is_tflite(tmp_path / "named.onnx")
    assert not is_tflite(tmp_path / "m.onnx") and not is_tflite(tmp_path / "none.tflite")


def test_tflite_and_unknown_paths_pass_through_unchanged(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(TFLITE_HEAD)
    assert as_tflite(model) == model
    assert as_tflite(str(tmp_path / "missing.tflite")) == tmp_path / "missing.tflite"
    assert as_tflite(tmp_path / "notes.txt") == tmp_path / "notes.txt"


def test_torch_pickle_gets_the_way_out(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"PK\x03\x04")
    with pytest.raises(ConversionError, match=r"torch\.export\.save.*ONNX"):
        as_tflite(weights)


def test_module_without_example_inputs_and_other_objects():
    torch = pytest.importorskip("torch")
    with pytest.raises(ConversionError, match="example_inputs"):
        as_tflite(torch.nn.Linear(2, 2))
    with pytest.raises(ConversionError, match="not a model PerfSAGE converts"):
        as_tflite(np.zeros(3))


def test_importing_convert_loads_no_converter():
    code = ("import sys, perfsage.convert as c; c.is_tflite('x'); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'onnx', 'litert_torch', "
            "'onnx2torch', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("blocked", "name", "command"), [
    ("onnx2torch", "net.onnx", ["convert", "--out", "net.tflite"]),
    ("torch", "net.pt2", ["predict", "-t", "ethos-u55-128"]),
])
def test_without_the_extra_one_line_names_it(tmp_path, blocked, name, command):
    model = tmp_path / name
    model.write_bytes(b"PK\x03\x04 never read")
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            "from perfsage.cli.main import main\n"
            f"main([{command[0]!r}, {str(model)!r}, *{command[1:]!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert f"(it imports {blocked}) needs the optional dependencies of perfsage[convert]: " \
           "pip install 'perfsage[convert]'" in proc.stderr
