"""Any search space with compressed weights: its architectures, pruned and clustered per layer.

``get_space("keyword-spotting+compressed")`` is the keyword-spotting space whose configs
also carry a ``"compression"`` entry: a default (sparsity, bits) and per-layer exceptions
by operator index (:class:`perfsage.udc.compress.CompressionPlan`'s JSON), drawn from
the config's own generator. ``build`` makes the dense model as the base space does and
applies the plan, so a dataset of such configs can be generated, rebuilt and labelled with
Vela like any other, and the labels see what Vela's weight encoder makes of the weights.
The base spaces are untouched: their models stay byte for byte what they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import Config, SearchSpace, choice

#: What a space name ends with to ask for its compressed version.
SUFFIX = "+compressed"
#: The config entry holding the compression plan.
KEY = "compression"
SPARSITY_CHOICES = (0.0, 0.25, 0.5, 0.75, 0.9)
BITS_CHOICES = (8, 6, 5, 4, 3, 2)
#: Share of models left dense, so a compressed dataset still spans its dense twin.
DENSE_SHARE = 0.1
#: Chance that a layer draws a compression of its own instead of the model's default.
OWN_LAYER_SHARE = 0.3


class CompressedSpace(SearchSpace):
    """A base space whose configs also say how each layer's weights are compressed."""

    def __init__(self, base: SearchSpace) -> None:
        self.base = base
        self.name = base.name + SUFFIX
        self.family = f"{base.family}, weights pruned and clustered per layer"
        self._last: tuple[str, bytes] | None = None  # sample() builds what build() reuses

    def sample(self, rng: np.random.Generator) -> Config:
        """A base config with a compression plan drawn for its weight layers."""
        from perfsage.udc.compress import weight_layers

        config = self.base.sample(rng)
        layers = weight_layers(self._dense(config))
        config[KEY] = sample_plan(rng, [layer.op_index for layer in layers])
        return config

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """The base space's model of ``config``, compressed as its plan says (int8 only)."""
        from perfsage.udc.compress import CompressionPlan, apply_plan

        dense = self._dense({k: v for k, v in config.items() if k != KEY}, dtype)
        plan = config.get(KEY)
        if plan is None or dtype != "int8":
            return dense
        return apply_plan(dense, CompressionPlan.from_json(plan), self.name)

    def _dense(self, config: Config, dtype: str = "int8") -> bytes:
        """The base model, built once for a sample() and the build() that follows it."""
        import json

        key = json.dumps([config, dtype], sort_keys=True)
        if self._last is None or self._last[0] != key:
            self._last = (key, self.base.build(config, dtype))
        return self._last[1]


def sample_plan(rng: np.random.Generator, layers: list[int]) -> dict[str, Any]:
    """A compression plan's JSON: dense now and then, else a default and some layers' own.

    ``layers``: the operator indices of the model's weight layers.
    """
    if rng.random() < DENSE_SHARE:
        return {"sparsity": 0.0, "bits": 8, "structured": False, "per_layer": {}}
    default = {"sparsity": choice(rng, SPARSITY_CHOICES), "bits": choice(rng, BITS_CHOICES),
               "structured": False}
    per_layer = {}
    for index in layers:
        if rng.random() < OWN_LAYER_SHARE:
            per_layer[str(index)] = {"sparsity": choice(rng, SPARSITY_CHOICES),
                                     "bits": choice(rng, BITS_CHOICES), "structured": False}
    return {**default, "per_layer": per_layer}
