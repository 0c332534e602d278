"""NAS-Bench-201 (Dong & Yang, ICLR 2020): all 15,625 cells, by architecture string.

The macro skeleton is the one LatBench measured (see ``shared/data/latbench/README.md``):
a 3x3 stem convolution with 16 channels, three stages of five cells with 16/32/64
channels, a ResNet basic block with stride 2 between stages, global average pooling and a
dense classifier over 100 classes; input 32x32x3, batch 1; ReLU merged into the
convolutions and batch normalisation folded away.

A cell is a 4-node DAG; node j sums one operation applied to each earlier node i. The
operations are ``none`` (no edge), ``skip_connect`` (identity), ``nor_conv_1x1``,
``nor_conv_3x3`` (convolutions with ReLU) and ``avg_pool_3x3`` (stride 1). A node with
only ``none`` inputs is absent; a cell whose output node is absent passes its input on
unchanged (the original multiplies by zero, which costs next to nothing either way).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from perfsage.errors import UsageError
from perfsage.spaces.base import Config, SearchSpace, weight_seed

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Incoming edges per node, in arch-string order: node 1 <- 0; node 2 <- 0, 1; node 3 <- 0, 1, 2.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
CHANNELS = (16, 32, 64)
CELLS_PER_STAGE = 5
CLASSES = 100


def arch_string(ops: tuple[str, ...] | list[str]) -> str:
    """The canonical string of six edge operations, e.g. ``|nor_conv_3x3~0|+|...|``."""
    o = list(ops)
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def parse_arch(arch: str) -> tuple[str, ...]:
    """The six edge operations of an architecture string, checked."""
    parts = [p for node in arch.strip().split("+") for p in node.strip("|").split("|") if p]
    ops, sources = [], []
    for part in parts:
        op, _, source = part.partition("~")
        ops.append(op)
        sources.append(source)
    if len(ops) != 6 or sources != ["0", "0", "1", "0", "1", "2"] or not set(ops) <= set(OPS):
        raise UsageError(f"arch: {arch!r} is not a NAS-Bench-201 cell string; expected "
                         f"{arch_string(['nor_conv_3x3'] * 6)!r} with ops from {list(OPS)}")
    return tuple(ops)


def all_archs() -> list[str]:
    """All 15,625 cells, in NAS-Bench-201's index order (edge ops in base 5)."""
    return [arch_string(ops) for ops in itertools.product(OPS, repeat=6)]


class NasBench201(SearchSpace):
    """NAS-Bench-201 cells in LatBench's macro skeleton."""

    name = "nasbench201"
    family = "NAS-Bench-201 (LatBench skeleton)"

    def sample(self, rng: np.random.Generator) -> Config:
        """A uniformly random cell."""
        ops = [OPS[int(i)] for i in rng.integers(0, len(OPS), 6)]
        return {"arch": arch_string(ops), "seed": weight_seed(rng)}

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """Stem, three stages of five cells with reduction blocks, pooling, classifier."""
        from perfsage.builder import ModelBuilder

        ops = parse_arch(config["arch"])
        b = ModelBuilder(seed=config["seed"], dtype=dtype)
        x = b.conv2d(b.input((1, 32, 32, 3)), CHANNELS[0], kernel=3)
        for stage, channels in enumerate(CHANNELS):
            if stage:
                x = _reduction(b, x, channels)
            for _ in range(CELLS_PER_STAGE):
                x = _cell(b, x, ops)
        x = b.mean(b.relu(x), axes=(1, 2), keepdims=False)
        return b.build(outputs=[b.dense(x, CLASSES)])


def _edge(b: Any, x: Any, op: str) -> Any:
    channels = x.shape[-1]
    if op == "skip_connect":
        return x
    if op == "avg_pool_3x3":
        return b.avg_pool(x, pool=3, stride=1, padding="same")
    return b.conv2d(x, channels, kernel=1 if op == "nor_conv_1x1" else 3, activation="relu")


def _cell(b: Any, x: Any, ops: tuple[str, ...]) -> Any:
    nodes: list[Any] = [x, None, None, None]
    for node in (1, 2, 3):
        terms = [_edge(b, nodes[src], op) for (dst, src), op in zip(EDGES, ops, strict=True)
                 if dst == node and op != "none" and nodes[src] is not None]
        for term in terms[1:]:
            terms[0] = b.add(terms[0], term)
        nodes[node] = terms[0] if terms else None
    return nodes[3] if nodes[3] is not None else x


def _reduction(b: Any, x: Any, channels: int) -> Any:
    """ResNet basic block with stride 2; the shortcut pools then projects."""
    h = b.conv2d(x, channels, kernel=3, stride=2, activation="relu")
    h = b.conv2d(h, channels, kernel=3)
    shortcut = b.conv2d(b.avg_pool(x, pool=2, stride=2), channels, kernel=1)
    return b.add(h, shortcut)
