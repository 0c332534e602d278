"""PyTorch and ONNX models through litert-torch: int8 TFLite that Vela and PerfSAGE take.

The issue's bar: a PyTorch network exported to ONNX and to ``.pt2`` goes through
``perfsage predict`` and ``perfsage measure`` (exit 0 both), and the two agree within 15 %
on ethos-u55-128.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.processes import perfsage
from perfsage.convert import as_tflite
from perfsage.errors import ConversionError, UsageError
from perfsage.graph import read_model

pytest.importorskip("litert_torch")
torch = pytest.importorskip("torch")

import torch_nets as nets  # noqa: E402 - after the skips

#: Operators a full-integer conversion may leave in float: none here.
COMPUTE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN"}


def _int8_compute(path) -> list[str]:
    model = read_model(path)
    sg = model.subgraphs[0]
    ops = [op for op in sg.operators if op.opcode in COMPUTE]
    assert ops, [op.opcode for op in sg.operators]
    return sorted({sg.tensors[op.outputs[0]].dtype for op in ops})


@pytest.mark.slow
def test_module_is_converted_once_and_cached():
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return torch.relu(self.conv(x))

    torch.manual_seed(0)
    module, x = Tiny().eval(), torch.randn(1, 3, 16, 16)
    path = as_tflite(module, example_inputs=(x,))
    assert path.name == "Tiny.tflite" and _int8_compute(path) == ["int8"]
    written = path.stat().st_mtime_ns
    again = as_tflite(module, example_inputs=x)
    assert again == path and again.stat().st_mtime_ns == written  # from the cache
    with torch.no_grad():
        module.conv.bias.add_(1.0)
    assert as_tflite(module, example_inputs=(x,)) != path  # new weights, new key


@pytest.mark.slow
def test_user_calibration_samples_change_the_model(tmp_path):
    torch.manual_seed(0)
    module, x = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval(), \
        torch.randn(1, 4)
    samples = tmp_path / "samples.npy"
    np.save(samples, np.full((3, 4), 50.0, np.float32))
    own = as_tflite(module, example_inputs=(x,), calibration=samples)
    default = as_tflite(module, example_inputs=(x,))
    assert own != default
    scale = {str(p): read_model(p).inputs[0].quantization.scale[0] for p in (own, default)}
    assert scale[str(own)] > 5 * scale[str(default)]  # inputs near 50 widen the input range
    with pytest.raises(UsageError, match="--calibration"):
        np.save(samples, np.zeros((3, 5), np.float32))
        as_tflite(module, example_inputs=(x,), calibration=samples)


@pytest.mark.slow
def test_a_failing_export_is_one_line_naming_the_tool():
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0]  # a data-dependent shape: no static TFLite graph

    with pytest.raises(ConversionError) as found:
        as_tflite(DataDependent(), example_inputs=(torch.randn(1, 8),))
    assert "\n" not in str(found.value) and "could not convert it" in str(found.value)


@pytest.mark.slow
def test_transformer_block_is_fully_int8():
    """LayerNorm, attention (batched matmul, softmax) and GELU: every tensor int8, which
    litert-torch's own PT2E quantiser left float (32 of 50 operators)."""
    class Block(torch.nn.Module):
        def __init__(self, d: int = 32) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(d)
            self.attention = torch.nn.MultiheadAttention(d, 4, batch_first=True)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.GELU(),
                                           torch.nn.Linear(64, d))

        def forward(self, x):
            y = self.norm(x)
            y = x + self.attention(y, y, y, need_weights=False)[0]
            return y + self.mlp(y)

    torch.manual_seed(0)
    model = read_model(as_tflite(Block().eval(), example_inputs=(torch.randn(1, 16, 32),)))
    sg = model.main
    kinds = {op.opcode: sg.tensors[op.outputs[0]].dtype for op in sg.operators}
    assert {"BATCH_MATMUL", "SOFTMAX", "FULLY_CONNECTED"} <= set(kinds), kinds
    assert set(kinds.values()) == {"int8"}, kinds


@pytest.mark.slow
def test_onnx_shape_arguments_become_static(tmp_path):
    """Pad, Slice, Resize, a dynamic batch's Shape-Gather-Reshape, Unsqueeze and Expand:
    what exporters write for F.pad, indexing, interpolate, ``x.view(x.size(0), -1)`` and
    broadcasting, at the exporter's opset 20."""
    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8 * 8 * 8, 5)

        def forward(self, x):
            x = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="reflect")
            y = torch.nn.functional.interpolate(self.conv(x)[:, :, 1:, :-1],
                                                scale_factor=0.5, mode="bilinear")
            y = torch.nn.functional.silu(y).view(y.size(0), -1)
            return self.fc(y).unsqueeze(1).expand(-1, 3, -1).reshape(1, 15)

    path = tmp_path / "head.onnx"
    torch.onnx.export(Head().eval(), (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                      input_names=["image"], dynamic_axes={"image": {0: "batch"}})
    model = read_model(as_tflite(path))
    ops = [op.opcode for op in model.main.operators]
    assert {"MIRROR_PAD", "SLICE", "CONV_2D", "RESIZE_BILINEAR", "FULLY_CONNECTED"} <= set(ops)
    assert model.inputs[0].shape == (1, 3, 16, 16)
    assert _int8_compute(as_tflite(path)) == ["int8"]


def _latency_ms(source) -> tuple[float, float]:
    """Predicted and measured ethos-u55-128 latency of a model file, through the CLI."""
    predicted = perfsage("predict", str(source), "-t", "ethos-u55-128", "--json")
    measured = perfsage("measure", str(source), "-t", "ethos-u55-128", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert measured.returncode == 0, measured.stderr
    assert "LiteRT-Torch" not in predicted.stderr + measured.stderr  # converters kept quiet
    figure = json.loads(predicted.stdout)[0]["predicted"]["latency_ms"]
    truth = json.loads(measured.stdout)["results"][0]["metrics"]["latency_ms"]
    assert figure > 0 and truth > 0
    return figure, truth


@pytest.fixture(scope="module", params=["onnx", "pt2"])
def exported(request, tmp_path_factory):
    """The MobileNetV2-like network exported from PyTorch to ONNX or ``.pt2``."""
    folder = tmp_path_factory.mktemp(request.param)
    save = nets.save_onnx if request.param == "onnx" else nets.save_pt2
    return save(folder / f"net.{request.param}")


@pytest.mark.slow
@pytest.mark.vela
def test_exported_file_converts_predicts_and_measures(exported, tmp_path):
    out = tmp_path / "net.tflite"
    made = perfsage("convert", str(exported), "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert made.stdout == "" and _int8_compute(out) == ["int8"]
    assert read_model(out).inputs[0].dtype == "int8"
    _latency_ms(exported)


@pytest.mark.slow
@pytest.mark.vela
def test_exported_file_predict_and_measure_agree_within_15_percent(exported):
    figure, truth = _latency_ms(exported)
    assert abs(figure - truth) <= 0.15 * truth, (figure, truth)
