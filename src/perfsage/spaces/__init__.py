"""Search spaces: ``sample(rng) -> config`` and ``build(config) -> bytes``, by name.

Adding a space is one module with a :class:`SearchSpace` subclass plus one line in
``_REGISTRY``. Modules are imported only when their space is asked for. Any space's name
with ``+compressed`` appended is that space with compressed weights
(:mod:`perfsage.spaces.compressed`).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from perfsage.errors import UsageError
from perfsage.spaces.base import Config, SearchSpace

_REGISTRY = {
    "image-classification": "perfsage.spaces.image_classification:ImageClassification",
    "keyword-spotting": "perfsage.spaces.keyword_spotting:KeywordSpotting",
    "super-resolution": "perfsage.spaces.super_resolution:SuperResolution",
    "object-detection": "perfsage.spaces.object_detection:ObjectDetection",
    "nasbench201": "perfsage.spaces.nasbench201:NasBench201",
    "random-graphs": "perfsage.spaces.random_graphs:RandomGraphs",
    "zoo": "perfsage.spaces.zoo:Zoo",
}

#: Spaces that follow no task, only there to cover operators and shapes: accuracy on the
#: task spaces is reported without them, and on them apart.
COVERAGE_SPACES = ("random-graphs", "zoo")

__all__ = ["COVERAGE_SPACES", "Config", "SearchSpace", "get_space", "space_names"]


def space_names() -> list[str]:
    """Names of every registered search space."""
    return list(_REGISTRY)


@cache
def get_space(name: str) -> SearchSpace:
    """The search space registered under ``name`` (one shared, stateless instance)."""
    from perfsage.spaces.compressed import SUFFIX, CompressedSpace

    if name.endswith(SUFFIX) and name.removesuffix(SUFFIX) in _REGISTRY:
        return CompressedSpace(get_space(name.removesuffix(SUFFIX)))
    target = _REGISTRY.get(name)
    if target is None:
        raise UsageError(f"unknown search space {name!r}; choose from: {', '.join(_REGISTRY)} "
                         f"(any of them{SUFFIX} for compressed weights)")
    module, cls = target.split(":")
    return getattr(import_module(module), cls)()
