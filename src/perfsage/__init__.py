"""PerfSAGE: predict what a neural network costs on an edge device before you deploy it.

The package is organised by stage (see ``docs/architecture.md``): ``perfsage.graph`` reads a
TFLite model into a typed IR and analyses its cost; later stages build datasets, measure
targets and predict.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The prediction API loads on first use, so `import perfsage` stays cheap.
    if name in ("predict", "predict_many", "predictions", "predict_layers", "close_workers",
                "search"):
        from perfsage import api

        return getattr(api, name)
    raise AttributeError(f"module 'perfsage' has no attribute {name!r}")
