"""The PerfSAGE graph neural network: trained with PyTorch Geometric, run with NumPy.

``net`` (torch, PyG) is used only for training; ``runtime`` evaluates the same network with
NumPy so that prediction never imports torch; ``weights`` reads and writes the safetensors +
JSON pair both sides share.
"""
