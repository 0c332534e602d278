"""Graph rewrites a compiler makes before it costs a graph, so predictions see the same graph.

Vela folds an explicit PAD into the convolution that reads it (its ``replace_pad_by_hw_pad``
pass): the padding becomes the convolution's own, and the PAD costs nothing. PyTorch and
ONNX exports write every padded stride-2 convolution that way (PAD, then a VALID
convolution), where Keras writes SAME padding; our training graphs are mostly the latter,
and a network shown the PADs charges them as work (a PyTorch MobileNetV2-like net: 1.26 ms
predicted against Vela's 0.75 ms; with the PADs folded, 0.71 ms against 0.71 ms).
"""

from __future__ import annotations

from dataclasses import replace

from perfsage.graph.ir import Model, Operator

#: Operators whose VALID padding can absorb a PAD in front of them.
_ABSORBING = ("CONV_2D", "DEPTHWISE_CONV_2D")


def fold_hw_pads(model: Model) -> Model:
    """``model`` with each foldable PAD merged into the convolution it feeds.

    A PAD (or PADV2) folds when its paddings are a constant that pads height and width
    only, by at most the convolution's kernel size less one on each side, its output is
    read by one VALID CONV_2D or DEPTHWISE_CONV_2D alone and is not a graph output. The
    convolution then reads the PAD's input with SAME padding; its output tensor, and so
    its declared shape, stay. Returns ``model`` itself when nothing folds.
    """
    sub = model.main
    folded: dict[int, int] = {}  # PAD index -> the convolution that absorbs it
    for op in sub.operators:
        target = _absorber(sub, op)
        if target is not None:
            folded[op.index] = target
    if not folded:
        return model
    into = {conv: pad for pad, conv in folded.items()}
    kept = [op for op in sub.operators if op.index not in folded]
    renumber = {op.index: i for i, op in enumerate(kept)}
    operators = []
    for op in kept:
        if op.index in into:
            pad = sub.operators[into[op.index]]
            op = replace(op, inputs=(pad.inputs[0], *op.inputs[1:]),
                         options={**op.options, "padding": "SAME"})
        operators.append(replace(op, index=renumber[op.index]))
    main = replace(sub, operators=operators)
    return replace(model, subgraphs=[main, *model.subgraphs[1:]])


def _absorber(sub, op: Operator) -> int | None:
    """The convolution a PAD folds into, or None."""
    if op.opcode not in ("PAD", "PADV2") or len(op.inputs) < 2 or len(op.outputs) != 1:
        return None
    out = op.outputs[0]
    readers = sub.consumers.get(out, [])
    if len(readers) != 1 or out in sub.outputs:
        return None
    conv = sub.operators[readers[0]]
    if (conv.opcode not in _ABSORBING or conv.options.get("padding") != "VALID"
            or conv.inputs[0] != out):
        return None
    paddings = sub.tensors[op.inputs[1]].values()
    if paddings is None or paddings.size != 8:
        return None
    pads = paddings.reshape(4, 2)
    weights = sub.tensors[conv.inputs[1]].shape
    if len(weights) != 4 or pads[0].any() or pads[3].any() or (pads < 0).any():
        return None
    kernel = (weights[1], weights[2])
    if pads[1].max() > kernel[0] - 1 or pads[2].max() > kernel[1] - 1:
        return None
    return conv.index
