"""The prediction path's numbers are pinned: speed work must not move a single bit.

The digests below were computed before the reader, analysis, features and runtime were
optimised. Trained weights depend on ``featurize`` output bit for bit (FEATURE_VERSION 1),
so any change here means a new feature version and retrained weights, not a new digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from perfsage.graph import analyze, read_model
from perfsage.predictors.features import GraphFeatures, featurize
from perfsage.predictors.perfsage_gnn import runtime, spec
from perfsage.predictors.shipped import load_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"

#: (example file or (search space, sample index)) -> (IR, analyze, featurize) digests.
DIGESTS = {
    "ds_cnn_s_kws_int8.tflite": ("d73be674fd71b7c5", "01c5e756971f29f4", "6d275a9bc204ccfb"),
    "mobilenet_v2_0.35_96_int8.tflite": ("59e133192f75528a", "1d7d8b9609c91a19",
                                         "11fc473d76d09a5a"),
    "op_zoo_float32.tflite": ("527d53e52d00bc3f", "24f7a08bc33e43d8", "8d309f45e4730985"),
    "op_zoo_int8.tflite": ("3c211b27922ec44b", "7f22824974bdfe53", "072a705cc8a3f809"),
    ("keyword-spotting", 0): ("d439e75ecb846769", "c710b342b8983541", "014918c0838b7ad2"),
    ("image-classification", 1): ("84597810ab5704f8", "203c3b1570a4c358", "c2944c8e032f7350"),
    ("super-resolution", 2): ("1e54c2f235201986", "9150c8cd2d163556", "8fe8b979b154c71b"),
    ("object-detection", 3): ("657d8dbdab06682a", "f207e7bd0154a407", "7bd7d3cd0d9e144f"),
    ("nasbench201", 4): ("ce47c1228c25a566", "8762d9b52dc364a7", "4bbb8f12c68ce661"),
}


def _model_bytes(key) -> bytes:
    if isinstance(key, str):
        return (EXAMPLES / key).read_bytes()
    from perfsage.spaces import get_space

    space, index = key
    sp = get_space(space)
    return sp.build(sp.sample_seeded(99, index))


def _digest(*parts) -> str:
    d = hashlib.sha256()
    for p in parts:
        d.update(p if isinstance(p, bytes) else repr(p).encode())
        d.update(b"|")
    return d.hexdigest()[:16]


def _ir_digest(m) -> str:
    """Every field of the IR, option values with their Python types."""
    parts = [m.version, m.description, m.size_bytes, m.signatures]
    for s in m.subgraphs:
        parts += [s.index, s.name, s.inputs, s.outputs]
        for t in s.tensors:
            q = t.quantization
            data = None if t.data is None else (
                t.data.dtype.str, t.data.shape, hashlib.sha256(t.data.tobytes()).hexdigest())
            parts += [t.index, t.name, t.shape, t.dtype, t.shape_signature, t.buffer,
                      t.is_variable, t.is_sparse,
                      None if q is None else (q.scale, q.zero_point, q.axis), data]
        for o in s.operators:
            parts += [o.index, o.opcode, o.inputs, o.outputs, o.custom_code, o.version,
                      o.intermediates,
                      sorted((k, repr(v), type(v).__name__) for k, v in o.options.items())]
    return _digest(*parts)


def _cost_digest(cost) -> str:
    d = cost.as_dict()
    d.pop("source")
    return _digest(json.dumps(d, default=repr))


def _features_digest(f: GraphFeatures) -> str:
    arrays = (f.op_types, f.nodes, f.edges, f.globals)
    return _digest(*[x for a in arrays for x in (a.dtype.str, a.shape, a.tobytes())])


@pytest.mark.parametrize("key", list(DIGESTS), ids=str)
def test_ir_costs_and_features_are_unchanged(key):
    model = read_model(_model_bytes(key))
    got = (_ir_digest(model), _cost_digest(analyze(model)), _features_digest(featurize(model)))
    assert got == DIGESTS[key]


@pytest.mark.parametrize("key", list(DIGESTS), ids=str)
def test_reading_without_details_changes_no_cost_or_feature(key):
    data = _model_bytes(key)
    lean, full = read_model(data, details=False), read_model(data)
    assert (_cost_digest(analyze(lean)), _features_digest(featurize(lean))) == DIGESTS[key][1:]
    for a, b in zip(lean.subgraphs, full.subgraphs, strict=True):
        assert all(t.name == "" and t.quantization is None for t in a.tensors)
        for t in b.tensors:
            t.name, t.quantization = "", None
    assert _ir_digest(lean) == _ir_digest(full)


def _reference_forward(w, layers, graphs, node_mu, node_sigma, global_mu, global_sigma):
    """The runtime as first written (np.add.at, float64 degrees): the numbers to match."""
    def linear(name, x):
        y = x @ w[f"{name}.weight"].T
        return y + w[f"{name}.bias"] if f"{name}.bias" in w else y

    def sage(name, h, src, dst, inv):
        out = np.zeros_like(h)
        np.add.at(out, dst, h[src])
        return linear(f"{name}.lin_l", out * inv) + linear(f"{name}.lin_r", h)

    sizes = np.array([len(g.op_types) for g in graphs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    types = np.concatenate([g.op_types for g in graphs])
    x = (np.concatenate([g.nodes for g in graphs]) - node_mu) / node_sigma
    edges = np.concatenate([g.edges + s for g, s in zip(graphs, starts, strict=True)], axis=1)
    src, dst = edges
    inv_fwd = 1.0 / np.maximum(np.bincount(dst, minlength=len(types)), 1)[:, None]
    inv_bwd = 1.0 / np.maximum(np.bincount(src, minlength=len(types)), 1)[:, None]
    h = np.maximum(linear("lin_in", np.concatenate([w["embed.weight"][types], x], axis=1)), 0)
    for i in range(layers):
        h = h + np.maximum(sage(f"fwd.{i}", h, src, dst, inv_fwd)
                           + sage(f"bwd.{i}", h, dst, src, inv_bwd), 0)
    total = np.add.reduceat(h, starts, axis=0)
    pooled = np.concatenate([
        total * spec.SUM_SCALE, total / sizes[:, None], np.maximum.reduceat(h, starts, axis=0),
        (np.stack([g.globals for g in graphs]) - global_mu) / global_sigma], axis=1)
    z = np.maximum(linear("head.0", pooled), 0)
    return linear("head.4", np.maximum(linear("head.2", z), 0))


def _random_weights(rng, n_node, n_global, n_out, hidden=128, layers=4, embed=32):
    """Full-size weights with PyTorch-like scales (lin_r has no bias, as in SAGEConv)."""
    shapes = {"embed.weight": (59, embed), "lin_in.weight": (hidden, embed + n_node),
              "lin_in.bias": (hidden,), "head.0.weight": (hidden, 3 * hidden + n_global),
              "head.0.bias": (hidden,), "head.2.weight": (hidden, hidden),
              "head.2.bias": (hidden,), "head.4.weight": (n_out, hidden), "head.4.bias": (n_out,)}
    for i in range(layers):
        for d in ("fwd", "bwd"):
            shapes |= {f"{d}.{i}.lin_l.weight": (hidden, hidden), f"{d}.{i}.lin_l.bias": (hidden,),
                       f"{d}.{i}.lin_r.weight": (hidden, hidden)}
    return {k: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
            for k, s in shapes.items()}


def test_runtime_matches_the_reference_implementation():
    graphs = [featurize(read_model(_model_bytes(key))) for key in DIGESTS]
    rng = np.random.default_rng(0)
    n_node, n_global = graphs[0].nodes.shape[1], len(graphs[0].globals)
    w = _random_weights(rng, n_node, n_global, 6)
    scaling = (np.abs(rng.standard_normal(n_node)).astype(np.float32) + 0.5,
               np.abs(rng.standard_normal(n_global)).astype(np.float32) + 0.5)
    args = (np.zeros(n_node, np.float32), scaling[0] * 4, np.zeros(n_global, np.float32),
            scaling[1] * 4)
    # The shipped spec with this test's scaling, plain columns and no structured readouts.
    plain = load_model("ethos-u55-128").spec._replace(
        node_columns=spec.node_columns("features"),
        groups=spec.column_groups(spec.node_columns("features")), node_mu=tuple(args[0]),
        node_sigma=tuple(args[1]), global_mu=tuple(args[2]), global_sigma=tuple(args[3]),
        additive=(), peak=(), rate_init=None, type_dropout=0.0, layers=4)
    network = runtime.Network(plain, w)
    for batch in (graphs, graphs[:1], graphs[::-1]):
        expected = _reference_forward(w, 4, batch, args[0], args[1], args[2], args[3])
        got = runtime.forward(network, batch)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
