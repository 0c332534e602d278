"""Hardware targets: the real tools that label the dataset (Vela, LiteRT, TFLite Micro).

Importing this package is cheap; each tool is imported when its target is first used.

    from perfsage.targets import get_target, MeasurePool

    figures = get_target("ethos-u55-128").measure(model_bytes)
    with MeasurePool(["ethos-u55-128", "cortex-m-tflm"], workers=2, timeout_s=60) as pool:
        for result in pool.imap_unordered(models):   # (key, model_bytes) pairs
            ...
"""

from perfsage.targets.base import Metric, Target, settings_hash
from perfsage.targets.pool import MeasurePool, MeasureResult
from perfsage.targets.registry import get_target, register, target_class, target_names

__all__ = [
    "MeasurePool", "MeasureResult", "Metric", "Target", "get_target", "register",
    "settings_hash", "target_class", "target_names",
]
