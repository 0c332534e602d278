"""Random operator graphs: every layer type of the builder, in shapes no task space has.

The task spaces follow published model families, so each leaves whole regions of the
operator-and-shape space empty: tall kernels on one channel only in keyword spotting,
stride-1 average pools only in NAS-Bench-201, DEPTH_TO_SPACE only in super resolution.
A predictor trained on some of them meets those regions for the first time in the space
it has not seen. PerfSAGE's claim is a predictor for *arbitrary* graphs (Chai et al.,
2023), so this space draws graphs with no construction rule at all, as a coverage set
beside the task spaces:

* an input of 4-384 px per side (independently, so maps are often not square) and 1-64
  channels;
* 2-24 steps, each one of: convolution (kernels 1-7 per axis, square or not, strides 1-2
  per axis, sometimes dilated), depthwise convolution (multiplier 1 or 2), average or max
  pooling (windows 2-5, strides 1-3 and no larger than the window), MEAN over rows,
  columns or both, a stand-alone activation (ReLU, ReLU6, logistic, hard-swish), PAD,
  nearest or bilinear resize (x2; sometimes x3 or x0.5, which Vela leaves to the CPU),
  DEPTH_TO_SPACE, a residual ADD, a two-branch CONCATENATION, a channel gate (MUL) or an
  element-wise MUL;
* filter counts log-uniform in 1-256, so thin and odd channel counts appear;
* half of the graphs end in a classifier (MEAN or flatten, dense to 2-1000 units, often a
  softmax), the rest in the feature map itself.

Tensors stay under 4.5 M elements (a 384 x 384 map of 30 channels), a layer under 1.5 G
MACs and a model under 5 G MACs: the sizes of super-resolution and detection networks,
where a convolution is compute-bound rather than dominated by per-layer overheads. The
config is the layer list itself, so it says exactly which graph was built.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from perfsage.builder.shapes import window_output
from perfsage.errors import UsageError
from perfsage.spaces.base import Config, SearchSpace, choice, weight_seed

CHANNELS = (1, 2, 3, 4, 8, 16, 24, 32, 64)
MAX_ELEMENTS = 4_500_000
MAX_LAYER_MACS = 1.5e9
MAX_MODEL_MACS = 5e9
ACTIVATIONS = (None, "relu", "relu6")
UNARY = ("relu", "relu6", "logistic", "hard_swish")
KERNEL_SIDES = (1, 2, 3, 3, 3, 4, 5, 7)
#: Relative frequency of each step kind.
STEPS = {
    "conv": 22, "depthwise": 14, "pool": 9, "mean": 4, "unary": 7, "pad": 4, "resize": 4,
    "depth_to_space": 3, "residual": 10, "concat": 8, "gate": 5, "mul": 3,
}

Shape = tuple[int, int, int, int]


def _log_uniform_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _kernel(rng: np.random.Generator) -> list[int]:
    """Square three times in four; otherwise each side on its own (10x4, 1x7, ...)."""
    k = choice(rng, KERNEL_SIDES)
    return [k, k] if rng.random() < 0.75 else [choice(rng, KERNEL_SIDES), choice(rng, KERNEL_SIDES)]


def _stride(rng: np.random.Generator) -> list[int]:
    r = rng.random()
    return [1, 1] if r < 0.65 else [2, 2] if r < 0.9 else choice(rng, ([2, 1], [1, 2]))


def _window(shape: Shape, layer: dict[str, Any]) -> tuple[int, int]:
    kernel = layer.get("kernel") or layer["pool"]
    d = _get(layer, "dilation")
    return window_output(layer["op"], shape[1:3], tuple(kernel), tuple(_get(layer, "stride")),
                         (d, d), _get(layer, "padding"))


def output_shape(layer: dict[str, Any], shapes: list[Shape]) -> Shape:
    """The shape a recorded layer gives, from the shapes of the nodes before it."""
    op = layer["op"]
    x = shapes[layer["in"][0]]
    if op in ("conv", "depthwise", "pool"):
        h, w = _window(x, layer)
        c = layer["filters"] if op == "conv" else x[3] * _get(layer, "multiplier")
        return (1, h, w, c)
    if op == "mean":
        return tuple(1 if i in layer["axes"] else n for i, n in enumerate(x))  # type: ignore
    if op == "pad":
        return (1, x[1] + sum(layer["pads"][0]), x[2] + sum(layer["pads"][1]), x[3])
    if op == "resize":
        return (1, *layer["size"], x[3])
    if op == "depth_to_space":
        return (1, 2 * x[1], 2 * x[2], x[3] // 4)
    if op == "concat":
        return (*x[:3], sum(shapes[i][3] for i in layer["in"]))
    return x  # unary, add, mul: the first operand's shape


def _macs(layer: dict[str, Any], x: Shape, out: Shape) -> float:
    if layer["op"] not in ("conv", "depthwise"):
        return 0.0
    per = layer["kernel"][0] * layer["kernel"][1] * (x[3] if layer["op"] == "conv" else 1)
    return float(np.prod(out)) * per


class RandomGraphs(SearchSpace):
    """Random DAGs over the builder's whole layer vocabulary: a coverage space."""

    name = "random-graphs"
    family = "random operator graphs (coverage, no task)"

    def sample(self, rng: np.random.Generator) -> Config:
        """A valid layer list: each step drawn, checked against the size limits, kept or not."""
        side = [_log_uniform_int(rng, 4, 384), _log_uniform_int(rng, 4, 384)]
        if rng.random() < 0.3:
            side[1] = side[0]
        shapes: list[Shape] = [(1, side[0], side[1], choice(rng, CHANNELS))]
        layers: list[dict[str, Any]] = []
        steps, taken, total_macs = int(rng.integers(2, 25)), 0, 0.0
        for _ in range(steps * 4):  # a rejected draw is retried, within bounds
            if taken >= steps:
                break
            new = _step(rng, _draw_step(rng), len(shapes) - 1, shapes[-1])
            trial, step_macs = list(shapes), 0.0
            for layer in new:
                try:
                    out = output_shape(layer, trial)
                except UsageError:  # a window that does not fit: redraw
                    break
                macs = _macs(layer, trial[layer["in"][0]], out)
                if min(out[1:]) < 1 or math.prod(out) > MAX_ELEMENTS or macs > MAX_LAYER_MACS:
                    break
                trial.append(out)
                step_macs += macs
            else:
                if total_macs + step_macs <= MAX_MODEL_MACS:
                    layers.extend(new)
                    shapes, taken, total_macs = trial, taken + 1, total_macs + step_macs
        if not any(la["op"] in ("conv", "depthwise") for la in layers):
            layers.append(_conv(rng, len(shapes) - 1, kernel=[1, 1], keep_size=True))
            shapes.append(output_shape(layers[-1], shapes))
        layers.extend(_head(rng, len(shapes) - 1, shapes[-1]))
        return {"input": list(shapes[0][1:]), "layers": layers, "seed": weight_seed(rng)}

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """Replay the layer list on a :class:`ModelBuilder`; the last layer is the output."""
        from perfsage.builder import ModelBuilder

        b = ModelBuilder(seed=config["seed"], dtype=dtype)
        nodes = [b.input((1, *config["input"]))]
        for layer in config["layers"]:
            nodes.append(_apply(b, layer, [nodes[i] for i in layer["in"]]))
        return b.build(outputs=[nodes[-1]])


def _draw_step(rng: np.random.Generator) -> str:
    names = list(STEPS)
    weights = np.array([STEPS[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _conv(rng: np.random.Generator, x: int, filters: int | None = None,
          kernel: list[int] | None = None, keep_size: bool = False) -> dict[str, Any]:
    """A convolution; ``keep_size`` (branches that meet again) means stride 1, 'same'."""
    stride = [1, 1] if keep_size else _stride(rng)
    dilation = 2 if stride == [1, 1] and rng.random() < 0.05 else 1
    padding = "same" if keep_size or rng.random() < 0.8 else "valid"
    return _compact({"op": "conv", "in": [x], "filters": filters or _log_uniform_int(rng, 1, 256),
                     "kernel": kernel or _kernel(rng), "stride": stride, "dilation": dilation,
                     "padding": padding, "act": choice(rng, ACTIVATIONS)})


#: Values a layer takes when its config leaves them out, which keeps configs short.
DEFAULTS = {"stride": [1, 1], "dilation": 1, "padding": "same", "act": None, "multiplier": 1}


def _compact(layer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in layer.items() if k not in DEFAULTS or DEFAULTS[k] != v}


def _get(layer: dict[str, Any], key: str) -> Any:
    return layer.get(key, DEFAULTS.get(key))


def _step(rng: np.random.Generator, kind: str, x: int, shape: Shape) -> list[dict[str, Any]]:
    """The layers of one step on node ``x``; later layers refer to earlier ones by index."""
    nxt = x + 1
    if kind == "conv":
        return [_conv(rng, x)]
    if kind == "depthwise":
        return [_compact({"op": "depthwise", "in": [x], "kernel": _kernel(rng),
                          "stride": _stride(rng), "multiplier": 2 if rng.random() < 0.15 else 1,
                          "padding": "same" if rng.random() < 0.8 else "valid",
                          "act": choice(rng, ACTIVATIONS)})]
    if kind == "pool":
        size = int(rng.integers(2, 6))
        pool = [size, size] if rng.random() < 0.8 else [int(rng.integers(1, 6)), size]
        s = int(rng.integers(1, min(max(pool), 3) + 1))  # Ethos-U pools stride at most 3
        return [_compact({"op": "pool", "in": [x], "kind": choice(rng, ("avg", "max")),
                          "pool": pool, "stride": [s, s],
                          "padding": choice(rng, ("same", "valid"))})]
    if kind == "mean":
        return [{"op": "mean", "in": [x], "axes": choice(rng, ([1, 2], [1, 2], [1], [2]))}]
    if kind == "unary":
        return [{"op": choice(rng, UNARY), "in": [x]}]
    if kind == "pad":
        return [{"op": "pad", "in": [x],
                 "pads": [[int(v) for v in rng.integers(0, 4, 2)] for _ in range(2)]}]
    if kind == "resize":
        factor = 2 if rng.random() < 0.8 else choice(rng, (3, 0.5))
        size = [max(1, int(shape[1] * factor)), max(1, int(shape[2] * factor))]
        return [{"op": "resize", "in": [x], "size": size,
                 "method": choice(rng, ("nearest", "bilinear"))}]
    if kind == "depth_to_space":
        if shape[3] % 4:
            return [_conv(rng, x, filters=4 * _log_uniform_int(rng, 1, 32), kernel=[1, 1],
                          keep_size=True),
                    {"op": "depth_to_space", "in": [nxt]}]
        return [{"op": "depth_to_space", "in": [x]}]
    if kind == "residual":
        body = _conv(rng, x, filters=shape[3], kernel=choice(rng, ([1, 1], [3, 3], [5, 5])),
                     keep_size=True)
        return [body, _compact({"op": "add", "in": [x, nxt], "act": choice(rng, ACTIVATIONS)})]
    if kind == "concat":
        left = _conv(rng, x, kernel=[1, 1], keep_size=True)
        right = _conv(rng, x, kernel=choice(rng, ([3, 3], [5, 5], [1, 7], [7, 1])),
                      keep_size=True)
        return [left, right, {"op": "concat", "in": [nxt, nxt + 1]}]
    if kind == "gate":
        squeeze = max(1, shape[3] // choice(rng, (2, 4, 8)))
        return [{"op": "mean", "in": [x], "axes": [1, 2]},
                _conv(rng, nxt, filters=squeeze, kernel=[1, 1], keep_size=True),
                _compact(_conv(rng, nxt + 1, filters=shape[3], kernel=[1, 1], keep_size=True)
                         | {"act": None}),
                {"op": "logistic", "in": [nxt + 2]},
                {"op": "mul", "in": [x, nxt + 3]}]
    if kind == "mul":
        other = _conv(rng, x, filters=shape[3], kernel=[1, 1], keep_size=True)
        return [other, {"op": "mul", "in": [x, nxt]}]
    raise ValueError(f"unknown step {kind!r}")


def _head(rng: np.random.Generator, x: int, shape: Shape) -> list[dict[str, Any]]:
    """Half the graphs end in a classifier; the rest output their last feature map."""
    if rng.random() < 0.5:
        return []
    flat = math.prod(shape)
    layers: list[dict[str, Any]] = []
    if flat <= 4096 and rng.random() < 0.3:
        layers.append({"op": "reshape", "in": [x], "shape": [1, flat]})
    else:
        layers.append({"op": "mean", "in": [x], "axes": [1, 2], "keepdims": False})
    layers.append({"op": "dense", "in": [x + 1], "units": _log_uniform_int(rng, 2, 1000)})
    if rng.random() < 0.6:
        layers.append({"op": "softmax", "in": [x + 2]})
    return layers


def _apply(b: Any, layer: dict[str, Any], xs: list[Any]) -> Any:
    """One recorded layer on the builder."""
    op = layer["op"]
    if op == "conv":
        return b.conv2d(xs[0], layer["filters"], kernel=tuple(layer["kernel"]),
                        stride=tuple(_get(layer, "stride")), dilation=_get(layer, "dilation"),
                        padding=_get(layer, "padding"), activation=_get(layer, "act"))
    if op == "depthwise":
        return b.depthwise_conv2d(xs[0], kernel=tuple(layer["kernel"]),
                                  stride=tuple(_get(layer, "stride")),
                                  depth_multiplier=_get(layer, "multiplier"),
                                  padding=_get(layer, "padding"), activation=_get(layer, "act"))
    if op == "pool":
        pool = b.avg_pool if layer["kind"] == "avg" else b.max_pool
        return pool(xs[0], pool=tuple(layer["pool"]), stride=tuple(_get(layer, "stride")),
                    padding=_get(layer, "padding"))
    if op == "mean":
        return b.mean(xs[0], axes=tuple(layer["axes"]), keepdims=layer.get("keepdims", True))
    if op == "pad":
        return b.pad(xs[0], [[0, 0], *layer["pads"], [0, 0]])
    if op == "resize":
        return b.resize(xs[0], tuple(layer["size"]), method=layer["method"])
    if op == "depth_to_space":
        return b.depth_to_space(xs[0], block=2)
    if op in ("add", "mul"):
        return getattr(b, op)(xs[0], xs[1], activation=_get(layer, "act"))
    if op == "concat":
        return b.concat(xs, axis=-1)
    if op == "reshape":
        return b.reshape(xs[0], layer["shape"])
    if op == "dense":
        return b.dense(xs[0], layer["units"])
    return getattr(b, op)(xs[0])  # relu, relu6, logistic, hard_swish, softmax
