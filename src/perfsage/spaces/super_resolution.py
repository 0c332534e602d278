"""Super resolution: SESR / FSRCNN style residual convolution stacks with DEPTH_TO_SPACE.

Ranges follow SESR (Bhardwaj et al., MLSys 2022: a 5x5 input conv with 16 or 32
features, 3-11 residual 3x3 blocks, a long residual, a 5x5 output conv to
channels x scale^2 and depth-to-space) and FSRCNN (Dong et al., ECCV 2016: 5x5 feature
extraction with d = 32-56, 1x1 shrink to s = 12-16, m = 1-4 3x3 mapping layers, 1x1
expand; its deconvolution replaced here, as in edge deployments, by a convolution to
channels x scale^2 and depth-to-space):

* input 64-360 px per side (independently), 1 (luma) or 3 channels; x2 or x4 upscaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfsage.spaces.base import Config, SearchSpace, choice, weight_seed

SIDES = (64, 96, 128, 160, 180, 240, 270, 320, 360)
SCALES = (2, 4)
STYLES = ("sesr", "fsrcnn")


class SuperResolution(SearchSpace):
    """SESR and FSRCNN style upscalers, x2 or x4, inputs 64-360 px."""

    name = "super-resolution"
    family = "SESR / FSRCNN"

    def sample(self, rng: np.random.Generator) -> Config:
        """Style first, then that style's own hyper-parameters."""
        config: Config = {
            "height": choice(rng, SIDES), "width": choice(rng, SIDES),
            "channels": choice(rng, (1, 3)), "scale": choice(rng, SCALES),
            "style": choice(rng, STYLES),
        }
        if config["style"] == "sesr":
            config.update(features=choice(rng, (16, 32)), blocks=int(rng.integers(3, 12)))
        else:
            config.update(features=choice(rng, (32, 40, 48, 56)), shrink=choice(rng, (12, 16)),
                          blocks=int(rng.integers(1, 5)))
        config["seed"] = weight_seed(rng)
        return config

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """Feature extraction, residual or mapping stack, conv to c*s^2, depth-to-space."""
        from perfsage.builder import ModelBuilder

        b = ModelBuilder(seed=config["seed"], dtype=dtype)
        c, s = config["channels"], config["scale"]
        x = b.input((1, config["height"], config["width"], c))
        body = _sesr if config["style"] == "sesr" else _fsrcnn
        x = b.conv2d(body(b, x, config), c * s * s, kernel=3 if config["style"] == "fsrcnn" else 5)
        return b.build(outputs=[b.depth_to_space(x, block=s)])


def _sesr(b: Any, x: Any, config: Config) -> Any:
    f = config["features"]
    first = b.conv2d(x, f, kernel=5, activation="relu")
    h = first
    for _ in range(config["blocks"]):
        h = b.add(b.conv2d(h, f, kernel=3, activation="relu"), h)
    return b.add(h, first)  # SESR's long residual


def _fsrcnn(b: Any, x: Any, config: Config) -> Any:
    d, s = config["features"], config["shrink"]
    h = b.conv2d(x, d, kernel=5, activation="relu")
    h = b.conv2d(h, s, kernel=1, activation="relu")
    for _ in range(config["blocks"]):
        h = b.conv2d(h, s, kernel=3, activation="relu")
    return b.conv2d(h, d, kernel=1, activation="relu")
