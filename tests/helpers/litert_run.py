"""One LiteRT invocation of a model on random input, for checks that a model runs."""

from __future__ import annotations

import numpy as np


def outputs_on_random_input(data: bytes, seed: int = 0) -> list[np.ndarray]:
    """Every output after one invocation: int8 inputs uniform over their range, others in
    [-1, 1), drawn from ``seed``."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        x = rng.integers(-128, 128, d["shape"]) if d["dtype"] == np.int8 else \
            rng.uniform(-1, 1, d["shape"])
        it.set_tensor(d["index"], x.astype(d["dtype"]))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]
