"""Hardware targets: the real tools that label the dataset (Vela, LiteRT, TFLite Micro).

Importing this package is cheap: its names load on first use, and each tool is imported
when its target is first used, so the prediction path can read one module of it (Vela's
CPU-fallback checks) without the worker pool.

    from perfsage.targets import get_target, MeasurePool

    figures = get_target("ethos-u55-128").measure(model_bytes)
    with MeasurePool(["ethos-u55-128", "cortex-m-tflm"], workers=2, timeout_s=60) as pool:
        for result in pool.imap_unordered(models):   # (key, model_bytes) pairs
            ...
"""

from importlib import import_module

#: Public name -> the module that defines it.
_WHERE = {
    "Metric": "base", "Target": "base", "settings_hash": "base",
    "MeasurePool": "pool", "MeasureResult": "pool",
    "get_target": "registry", "register": "registry", "target_class": "registry",
    "target_names": "registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"perfsage.targets.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'perfsage.targets' has no attribute {name!r}")
