"""Graph rewrites made before costing: Vela's PAD folding."""

from __future__ import annotations

import pytest

from perfsage.builder import ModelBuilder
from perfsage.graph import read_model
from perfsage.graph.rewrite import fold_hw_pads


def _padded(paddings, padding: str = "valid", stride: int = 2) -> bytes:
    b = ModelBuilder(seed=1)
    x = b.input((1, 32, 32, 8))
    y = b.conv2d(b.pad(x, paddings), 16, 3, stride, padding=padding, activation="relu")
    return b.build([b.conv2d(y, 8, 1)])


def test_a_pad_before_a_valid_convolution_folds_into_it():
    model = read_model(_padded([[0, 0], [1, 1], [1, 1], [0, 0]]))
    folded = fold_hw_pads(model)
    ops = folded.main.operators
    assert [op.opcode for op in ops] == ["CONV_2D", "CONV_2D"]
    assert [op.index for op in ops] == [0, 1]
    assert ops[0].inputs[0] == folded.main.inputs[0]
    assert ops[0].options["padding"] == "SAME"
    assert folded.main.tensors[ops[0].outputs[0]].shape == (1, 16, 16, 16)
    assert [op.opcode for op in model.main.operators][0] == "PAD"  # the input is untouched


@pytest.mark.parametrize("paddings, padding", [
    ([[0, 0], [1, 1], [1, 1], [1, 1]], "valid"),  # pads channels: no convolution padding
    ([[0, 0], [3, 3], [3, 3], [0, 0]], "valid"),  # more than a 3x3 kernel can absorb
    ([[0, 0], [1, 1], [1, 1], [0, 0]], "same"),  # the convolution pads already
])
def test_pads_a_convolution_cannot_absorb_stay(paddings, padding):
    model = read_model(_padded(paddings, padding))
    assert fold_hw_pads(model) is model


def test_the_pipeline_costs_a_folded_pad_like_same_padding():
    import perfsage

    b = ModelBuilder(seed=1)
    x = b.input((1, 32, 32, 8))
    same = b.build([b.conv2d(b.conv2d(x, 16, 3, 2, activation="relu"), 8, 1)])
    padded = _padded([[0, 0], [0, 1], [0, 1], [0, 0]])  # TFLite's SAME for stride 2
    a, c = perfsage.predict_many([padded, same], "ethos-u55-128")
    assert a["latency_ms"] == pytest.approx(c["latency_ms"], rel=0.1)


def _causal_conv1d(dilation: int, pad: int) -> bytes:
    """Keras' causal Conv1D as the converter writes it: PAD (3-D), RESHAPE, VALID CONV_2D."""
    b = ModelBuilder(seed=1)
    x = b.input((1, 64, 16))
    y = b.pad(x, [[0, 0], [pad, 0], [0, 0]])
    y = b.reshape(y, (1, 1, 64 + pad, 16))
    y = b.conv2d(y, 16, (1, 3), 1, dilation=(1, dilation), padding="valid", activation="relu")
    return b.build([b.conv2d(y, 8, 1)])


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_a_causal_pad_folds_through_the_reshape_as_far_as_the_dilated_kernel_reaches(dilation):
    model = read_model(_causal_conv1d(dilation, 2 * dilation))
    folded = fold_hw_pads(model)
    ops = folded.main.operators
    assert [op.opcode for op in ops] == ["RESHAPE", "CONV_2D", "CONV_2D"]
    assert ops[0].inputs[0] == folded.main.inputs[0]
    assert folded.main.tensors[ops[0].outputs[0]].shape == (1, 1, 64, 16)
    assert ops[1].options["padding"] == "SAME"
    assert model.main.tensors[model.main.operators[1].outputs[0]].shape == (1, 1, 66 + 2 * (
        dilation - 1), 16)  # the input model's tensors are untouched


def test_a_causal_pad_beyond_the_dilated_kernel_stays():
    model = read_model(_causal_conv1d(1, 3))
    assert fold_hw_pads(model) is model


def test_each_renaming_operator_shrinks_in_its_own_layout():
    """PAD (3-D) -> RESHAPE to 4-D -> RESHAPE back to 4-D: both outputs lose the padding."""
    b = ModelBuilder(seed=1)
    x = b.input((1, 64, 16))
    y = b.reshape(b.pad(x, [[0, 0], [2, 0], [0, 0]]), (1, 66, 1, 16))
    y = b.reshape(y, (1, 1, 66, 16))
    y = b.conv2d(y, 16, (1, 3), 1, padding="valid", activation="relu")
    folded = fold_hw_pads(read_model(b.build([b.conv2d(y, 8, 1)])))
    ops = folded.main.operators
    assert [op.opcode for op in ops] == ["RESHAPE", "RESHAPE", "CONV_2D", "CONV_2D"]
    assert [folded.main.tensors[op.outputs[0]].shape for op in ops[:2]] == [(1, 64, 1, 16),
                                                                            (1, 1, 64, 16)]
