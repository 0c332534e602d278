"""The zoo: families of real architectures with the structure our task spaces lack.

Real models that no one here wrote missed our predictions where they differ from the task
spaces (issue 12): BatchNorm the converter cannot fold, dense concatenations that stream
feature maps from flash, squeeze-excite with hard sigmoids, attention, recurrence,
channel shuffles, encoder-decoders, several outputs, megabytes of weights, operators left
on the CPU. Each family here follows a published architecture (its module names it) with
random width, depth, resolution and classes:

* :mod:`~perfsage.spaces.zoo.cnn`: Keras CNNs (Conv-ReLU-BN), pre-activation ResNets,
  DenseNets, Inception cells, ResNeXt (grouped convolution);
* :mod:`~perfsage.spaces.zoo.mobile`: ShuffleNetV2, MobileNetV3, EfficientNetV2;
* :mod:`~perfsage.spaces.zoo.attention`: ViT, MobileViT;
* :mod:`~perfsage.spaces.zoo.dense_prediction`: U-Net, SSD with several outputs;
* :mod:`~perfsage.spaces.zoo.sequence`: unrolled LSTM/GRU, TCN.

Inputs are mostly small (labels cost time per pixel), with real-size resolutions in about
one model in seven; widths and depths reach real sizes, so many models carry 0.5-8 MB of
weights. A drawn model over :data:`MAX_MODEL_BYTES` or :data:`MAX_MACS` is redrawn. One
config in twenty is a float32 model, which Vela leaves entirely to the CPU, as it does with
deployed float models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from perfsage.spaces.base import Config, SearchSpace, weight_seed
from perfsage.spaces.zoo import attention, cnn, dense_prediction, mobile, sequence

#: name -> (sample(rng) -> dict, build(builder, config) -> outputs)
FAMILIES: dict[str, tuple[Callable, Callable]] = {
    **cnn.FAMILIES, **mobile.FAMILIES, **attention.FAMILIES, **dense_prediction.FAMILIES,
    **sequence.FAMILIES,
}
#: Relative frequency of each family.
WEIGHTS = {"keras_cnn": 8, "preact_resnet": 6, "densenet": 7, "inception": 6, "resnext": 6,
           "shufflenet": 7, "mobilenet_v3": 8, "efficientnet_v2": 7, "vit": 8, "mobilevit": 6,
           "unet": 7, "ssd": 7, "rnn": 7, "tcn": 6}
P_FLOAT = 0.05
#: Bounds on a drawn model: the flatbuffer (weights dominate it) and multiply-accumulates.
MAX_MODEL_BYTES = 9 * 2**20
MAX_MACS = 1.5e9
_REDRAWS = 30


def _sizes(data: bytes) -> tuple[int, int]:
    from perfsage.graph import analyze, read_model

    return len(data), analyze(read_model(data)).macs


class Zoo(SearchSpace):
    """Real-architecture families (coverage): the structure the task spaces lack."""

    name = "zoo"
    family = "zoo of real architectures (DenseNet, ResNeXt, ShuffleNetV2, MobileNetV3, " \
             "EfficientNetV2, ViT, MobileViT, U-Net, SSD, LSTM/GRU, TCN, Keras CNNs)"

    def sample(self, rng: np.random.Generator) -> Config:
        """A family by :data:`WEIGHTS`, its config, redrawn while the model is too large."""
        names = list(WEIGHTS)
        p = np.array([WEIGHTS[n] for n in names], dtype=float)
        for _ in range(_REDRAWS):
            family = names[int(rng.choice(len(names), p=p / p.sum()))]
            config: dict[str, Any] = {"family": family, **FAMILIES[family][0](rng)}
            if rng.random() < P_FLOAT:
                config["dtype"] = "float32"
            config["seed"] = weight_seed(rng)
            size, macs = _sizes(self.build(config))
            if size <= MAX_MODEL_BYTES and macs <= MAX_MACS:
                return config
        return config  # pathological generator: the last draw, whatever its size

    def build(self, config: Config, dtype: str = "int8") -> bytes:
        """The family's model; a config's own ``dtype`` (float32 models) wins."""
        from perfsage.builder import ModelBuilder

        b = ModelBuilder(seed=config["seed"], dtype=config.get("dtype", dtype))
        outputs = FAMILIES[config["family"]][1](b, config)
        return b.build(outputs=outputs)
