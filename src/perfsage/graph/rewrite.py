"""Graph rewrites a compiler makes before it costs a graph, so predictions see the same graph.

Vela folds an explicit PAD into the convolution that reads it (its ``replace_pad_by_hw_pad``
pass): the padding becomes the convolution's own, and the PAD costs nothing. PyTorch and
ONNX exports write every padded stride-2 convolution that way (PAD, then a VALID
convolution), where Keras writes SAME padding; our training graphs are mostly the latter,
and a network shown the PADs charges them as work (a PyTorch MobileNetV2-like net: 1.26 ms
predicted against Vela's 0.75 ms; with the PADs folded, 0.71 ms against 0.71 ms).

Keras' causal and dilated ``Conv1D`` is the same pattern in three dimensions: a PAD of the
time axis, a RESHAPE that inserts the unit height the 2-D convolution needs, then the
convolution. Vela removes the RESHAPE (it only renames memory) and folds the PAD too, as far
as the dilated kernel reaches: its command stream shows the convolutions of a temporal
ConvNet with left padding 2, 4 and 8, and no PAD left (``--verbose-high-level-command-
stream``). Shown those PADs, the network priced Keras' TCN for activity recognition at
+59 % of Vela's latency on ethos-u55-128.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from perfsage.graph.ir import Model, Operator, Subgraph, Tensor

#: Operators whose VALID padding can absorb a PAD in front of them.
_ABSORBING = ("CONV_2D", "DEPTHWISE_CONV_2D")
#: Operators that only rename memory: a PAD may reach its convolution through them.
_RENAMING = ("RESHAPE", "EXPAND_DIMS")


@dataclass(frozen=True)
class _Fold:
    """One PAD that folds: the convolution that absorbs it, the renaming operators between.

    ``renames`` pairs each renaming operator with the PAD's padding in the layout of its
    output ([rank, 2]), which shrinks by it.
    """

    pad: int
    conv: int
    renames: tuple[tuple[int, np.ndarray], ...]


def fold_hw_pads(model: Model) -> Model:
    """``model`` with each foldable PAD merged into the convolution it feeds.

    A PAD (or PADV2) folds when its paddings are a constant that pads height and width
    only (as the convolution sees them, after any RESHAPE or EXPAND_DIMS between them that
    only inserts or removes unit dimensions), by at most the dilated kernel's extent less
    one on each side, and its output, and that of each renaming operator between, is read
    by the next operator alone and is not a graph output. The convolution (a VALID
    CONV_2D or DEPTHWISE_CONV_2D) then reads the unpadded tensor with SAME padding; the
    renaming operators' outputs shrink to the unpadded shape; the convolution's output
    tensor, and so its declared shape, stay. Returns ``model`` itself when nothing folds.
    """
    sub = model.main
    folds = [f for op in sub.operators if (f := _fold_of(sub, op)) is not None]
    if not folds:
        return model
    tensors = list(sub.tensors)
    into: dict[int, int] = {}  # convolution or first renaming operator -> the PAD it reads past
    for f in folds:
        into[f.renames[0][0] if f.renames else f.conv] = f.pad
        for i, padding in f.renames:
            out = sub.operators[i].outputs[0]
            tensors[out] = _unpadded(tensors[out], padding)
    pads = {f.pad for f in folds}
    convs = {f.conv for f in folds}
    kept = [op for op in sub.operators if op.index not in pads]
    renumber = {op.index: i for i, op in enumerate(kept)}
    operators = []
    for op in kept:
        if op.index in into:
            op = replace(op, inputs=(sub.operators[into[op.index]].inputs[0], *op.inputs[1:]))
        if op.index in convs:
            op = replace(op, options={**op.options, "padding": "SAME"})
        operators.append(replace(op, index=renumber[op.index]))
    main = replace(sub, tensors=tensors, operators=operators)
    return replace(model, subgraphs=[main, *model.subgraphs[1:]])


def _unpadded(tensor: Tensor, padding: np.ndarray) -> Tensor:
    """``tensor`` with each padded dimension shrunk by its padding."""
    shape = tuple(int(d - padding[i].sum()) for i, d in enumerate(tensor.shape))
    signature = tensor.shape_signature
    if signature is not None and len(signature) == len(shape):
        signature = tuple(s if s < 0 else shape[i] for i, s in enumerate(signature))
    return replace(tensor, shape=shape, shape_signature=signature)


def _fold_of(sub: Subgraph, op: Operator) -> _Fold | None:
    """How a PAD folds into the convolution it feeds, or None."""
    if op.opcode not in ("PAD", "PADV2") or len(op.inputs) < 2 or len(op.outputs) != 1:
        return None
    paddings = sub.tensors[op.inputs[1]].values()
    out = op.outputs[0]
    shape = sub.tensors[out].shape
    if paddings is None or paddings.size != 2 * len(shape) or (paddings < 0).any():
        return None
    padding = paddings.reshape(len(shape), 2).astype(np.int64)
    renames: list[tuple[int, np.ndarray]] = []
    reader = _sole_reader(sub, out)
    while reader is not None and reader.opcode in _RENAMING:
        renamed = sub.tensors[reader.outputs[0]].shape
        padding = _renamed_padding(shape, renamed, padding)
        if padding is None:
            return None
        renames.append((reader.index, padding))
        out, shape = reader.outputs[0], renamed
        reader = _sole_reader(sub, out)
    if (reader is None or reader.opcode not in _ABSORBING
            or reader.options.get("padding") != "VALID" or reader.inputs[0] != out):
        return None
    weights = sub.tensors[reader.inputs[1]].shape
    if len(weights) != 4 or len(shape) != 4 or padding[0].any() or padding[3].any():
        return None
    reach = [(weights[1] - 1) * int(reader.options.get("dilation_h_factor", 1) or 1),
             (weights[2] - 1) * int(reader.options.get("dilation_w_factor", 1) or 1)]
    if padding[1].max() > reach[0] or padding[2].max() > reach[1]:
        return None
    return _Fold(op.index, reader.index, tuple(renames))


def _sole_reader(sub: Subgraph, tensor: int) -> Operator | None:
    """The one operator that reads ``tensor``; None if several do or it is a graph output."""
    readers = sub.consumers.get(tensor, [])
    if len(readers) != 1 or tensor in sub.outputs:
        return None
    op = sub.operators[readers[0]]
    return op if len(op.outputs) == 1 else None


def _renamed_padding(before: tuple[int, ...], after: tuple[int, ...],
                     padding: np.ndarray) -> np.ndarray | None:
    """The padding of ``before`` in the layout of ``after``; None unless a unit reshape.

    ``after`` may only insert or remove unit dimensions. A padded dimension is never a
    unit one (it holds its padding), so it keeps its place among the others.
    """
    kept = [i for i, d in enumerate(before) if d != 1]
    found = [j for j, d in enumerate(after) if d != 1]
    if [before[i] for i in kept] != [after[j] for j in found]:
        return None
    out = np.zeros((len(after), 2), np.int64)
    for i, j in zip(kept, found, strict=True):
        out[j] = padding[i]
    return out
