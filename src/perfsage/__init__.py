"""PerfSAGE: predict what a neural network costs on an edge device before you deploy it.

The package is organised by stage (see ``docs/architecture.md``): ``perfsage.graph`` reads a
TFLite model into a typed IR and analyses its cost; later stages build datasets, measure
targets and predict.
"""

__version__ = "0.1.0"
