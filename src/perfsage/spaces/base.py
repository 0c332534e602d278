"""The search-space contract: sample a small JSON config, build a model from it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

Config = dict[str, Any]


class SearchSpace(ABC):
    """A family of networks: random configs from a seeded generator, models from configs.

    ``build`` must be a pure function of the config (weights come from ``config["seed"]``),
    so a dataset can keep configs instead of model files and rebuild bytes on demand.
    """

    #: Stable registry name, e.g. "keyword-spotting".
    name: ClassVar[str]
    #: The published model family the ranges follow, for docs and `dataset info`.
    family: ClassVar[str]

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Config:
        """Draw one configuration; everything random comes from ``rng``."""

    @abstractmethod
    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """The .tflite bytes of a configuration (int8 unless the space is measured in float)."""

    def sample_seeded(self, seed: int, index: int) -> Config:
        """The ``index``-th configuration of dataset seed ``seed``: stable on every machine."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        return self.sample(rng)


def choice(rng: np.random.Generator, options: list | tuple) -> Any:
    """One element of ``options`` as a plain Python value (JSON-friendly)."""
    value = options[int(rng.integers(len(options)))]
    return value.item() if isinstance(value, np.generic) else value


def weight_seed(rng: np.random.Generator) -> int:
    """A seed for the builder's random weights, drawn from the config's generator."""
    return int(rng.integers(2**31 - 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` as MobileNet does, never below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
