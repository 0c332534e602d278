"""Mutating any search space's config: one field changed, values the space itself draws.

A space only promises ``sample(rng) -> config``; it states no ranges. So the mutator learns
them from the space: it draws a few hundred configs once and keeps, per field (a path with
list positions replaced by ``*``), every value it saw and every length a list of blocks
took. A mutation then changes one site of the parent, as regularised evolution does (Real
et al., AAAI 2019): a number moves to the next value seen below or above it, or any field
is drawn again from the values seen (with their frequencies, so the space's own
distribution is kept); a list of blocks loses one block or gains one seen elsewhere.

Some spaces need more than that, and say so in :data:`HINTS`: fields that only make sense
together (a zoo family's settings), fields that must change as a whole (a random graph's
layer list, whose inputs name other layers) and a space-specific step (one edge of a
NAS-Bench-201 cell).

A mutated config can still be one its space cannot build; the evaluator counts those and
moves on. Weight seeds (``seed`` keys) are never mutated: they change no cost.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perfsage.spaces.base import Config, SearchSpace

#: Configs drawn to learn a space's fields: enough to see every value of a small choice and
#: most of a filter range.
LEARN_SAMPLES = 400
#: Keys never mutated: weight seeds change no cost; a space's own compression record is
#: replaced by the search's per-layer genes (see :func:`architecture`).
FROZEN_KEYS = frozenset({"seed", "compression"})

Path = tuple[Any, ...]


def architecture(config: Config) -> Config:
    """A config without the compression a space may record: the search owns compression."""
    return {k: v for k, v in config.items() if k != "compression"}


def _nb201_edge(config: Config, rng: np.random.Generator) -> Config:
    """One edge of the NAS-Bench-201 cell gets another of the five operations."""
    from perfsage.spaces.nasbench201 import OPS

    nodes = [part.strip("|").split("|") for part in config["arch"].split("+")]
    edges = [(i, j) for i, node in enumerate(nodes) for j in range(len(node))]
    i, j = edges[int(rng.integers(len(edges)))]
    op, source = nodes[i][j].split("~")
    others = [o for o in OPS if o != op]
    nodes[i][j] = f"{others[int(rng.integers(len(others)))]}~{source}"
    return config | {"arch": "+".join("|" + "|".join(node) + "|" for node in nodes)}


@dataclass(frozen=True, slots=True)
class Hints:
    """What the generic mutation must know about one space.

    Attributes:
        conditioned_on: top-level keys whose values decide what the other fields may be;
            other fields are drawn from configs with the same values, and changing one of
            these keys draws a whole new config.
        atomic: top-level keys whose value changes as a whole.
        step: a space-specific mutation used for half of the mutations.
        samples: configs to learn from, where drawing one is slow (the zoo sizes each
            model it draws: 70 ms a config).
    """

    conditioned_on: tuple[str, ...] = ()
    atomic: tuple[str, ...] = ()
    step: Callable[[Config, np.random.Generator], Config] | None = None
    samples: int = LEARN_SAMPLES


HINTS: dict[str, Hints] = {
    "zoo": Hints(conditioned_on=("family",), samples=60),
    "random-graphs": Hints(atomic=("layers",)),
    "nasbench201": Hints(step=_nb201_edge),
}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _signature(path: Path) -> str:
    """A field's name whatever block it sits in: ``blocks/*/filters``."""
    return "/".join("*" if isinstance(p, int) else str(p) for p in path)


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@dataclass(slots=True)
class _Pools:
    """What one condition's configs showed: values per field, lengths per block list."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    lengths: dict[str, tuple[int, int]] = field(default_factory=dict)


class Mutator:
    """One-site mutations of a space's configs, with the value ranges learnt from sampling.

    Args:
        space: the search space.
        rng: the generator the learning samples come from.
        samples: configs drawn to learn the fields (default: the space's hint).
    """

    def __init__(self, space: SearchSpace, rng: np.random.Generator,
                 samples: int | None = None) -> None:
        self.space = space
        self.hints = HINTS.get(space.name, Hints())
        samples = self.hints.samples if samples is None else samples
        self._pools: dict[str, _Pools] = {}
        for _ in range(samples):
            config = space.sample(rng)
            key = self._condition(config)
            self._learn(config, (), self._pools.setdefault(key, _Pools()))
        for pools in self._pools.values():  # numbers in order, for the next value up or down
            for sig, seen in pools.values.items():
                if all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen):
                    pools.values[sig] = sorted(seen)

    def _condition(self, config: Config) -> str:
        return _freeze([config.get(k) for k in self.hints.conditioned_on])

    def _atomic(self, path: Path) -> bool:
        return len(path) == 1 and path[0] in self.hints.atomic

    def _learn(self, value: Any, path: Path, pools: _Pools) -> None:
        sig = _signature(path)
        if isinstance(value, dict):
            for key, item in value.items():
                if key not in FROZEN_KEYS:
                    self._learn(item, (*path, key), pools)
            return
        if isinstance(value, list) and not self._atomic(path) and \
                not all(_is_scalar(v) for v in value):
            low, high = pools.lengths.get(sig, (len(value), len(value)))
            pools.lengths[sig] = (min(low, len(value)), max(high, len(value)))
            pools.values.setdefault(_signature((*path, 0)), []).extend(
                copy.deepcopy(value))  # whole blocks, for insertions
            for i, item in enumerate(value):
                self._learn(item, (*path, i), pools)
            return
        pools.values.setdefault(sig, []).append(copy.deepcopy(value))

    def _sites(self, value: Any, path: Path, pools: _Pools) -> list[Path]:
        """Every place of a config a mutation can change: fields and variable block lists."""
        if isinstance(value, dict):
            return [site for key, item in value.items() if key not in FROZEN_KEYS
                    for site in self._sites(item, (*path, key), pools)]
        if isinstance(value, list) and not self._atomic(path) and \
                not all(_is_scalar(v) for v in value):
            sites = [site for i, item in enumerate(value)
                     for site in self._sites(item, (*path, i), pools)]
            low, high = pools.lengths.get(_signature(path), (len(value), len(value)))
            return sites + ([path] if low < high else [])
        return [path] if len(pools.values.get(_signature(path), ())) > 0 else []

    def mutate(self, config: Config, rng: np.random.Generator) -> Config:
        """A copy of ``config`` with one site changed (it may equal the parent, rarely)."""
        if self.hints.step is not None and rng.random() < 0.5:
            return self.hints.step(copy.deepcopy(config), rng)
        key = self._condition(config)
        pools = self._pools.get(key)
        sites = self._sites(config, (), pools) if pools else []
        if pools is None or not sites:
            return self._fresh(config, rng)
        path = sites[int(rng.integers(len(sites)))]
        if path and path[0] in self.hints.conditioned_on:
            return self._fresh(config, rng)
        child = copy.deepcopy(config)
        parent, last = _parent(child, path)
        current = parent[last]
        if isinstance(current, list) and not _is_scalar_list(current) and \
                not self._atomic(path):
            self._resize(current, path, pools, rng)
        else:
            parent[last] = self._value(current, _signature(path), pools, rng)
        return child

    def _fresh(self, config: Config, rng: np.random.Generator) -> Config:
        """A new config of the space, keeping the parent's weight seed."""
        fresh = architecture(self.space.sample(rng))
        if "seed" in config and "seed" in fresh:
            fresh["seed"] = config["seed"]
        return fresh

    def _resize(self, blocks: list, path: Path, pools: _Pools,
                rng: np.random.Generator) -> None:
        """Drop one block, or insert a block seen in another config, within seen lengths."""
        low, high = pools.lengths[_signature(path)]
        grow = len(blocks) <= low or (len(blocks) < high and rng.random() < 0.5)
        if grow:
            seen = pools.values[_signature((*path, 0))]
            block = copy.deepcopy(seen[int(rng.integers(len(seen)))])
            blocks.insert(int(rng.integers(len(blocks) + 1)), block)
        else:
            del blocks[int(rng.integers(len(blocks)))]

    @staticmethod
    def _value(current: Any, sig: str, pools: _Pools, rng: np.random.Generator) -> Any:
        """The next value seen up or down (numbers, half the time), else one drawn again."""
        seen = pools.values[sig]
        numeric = isinstance(current, int | float) and not isinstance(current, bool)
        if numeric and rng.random() < 0.5 and isinstance(seen[0], int | float):
            distinct = sorted(set(seen))
            position = int(np.searchsorted(distinct, current))
            up = rng.random() < 0.5
            if up:
                position += 1 if position < len(distinct) and distinct[position] == current \
                    else 0
            else:
                position -= 1
            if 0 <= position < len(distinct):
                return distinct[position]
        return copy.deepcopy(seen[int(rng.integers(len(seen)))])


def _is_scalar_list(value: list) -> bool:
    return all(_is_scalar(v) for v in value)


def _parent(config: Any, path: Path) -> tuple[Any, Any]:
    """The container holding ``path``'s value, and the key in it."""
    node = config
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]
