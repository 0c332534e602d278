"""Metric scaling shared by every predictor: how labels become training targets and back.

Each metric gets a mode from its training labels: ``log`` for positive values (latency,
memory; errors are relative), ``log1p`` for counts that can be zero (operators left on the
CPU), ``constant`` when every training label is equal (nothing to learn). Targets are then
standardised per metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def output_scaling(labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """``metrics``, ``modes``, ``mu``, ``sigma`` and ``constants`` fitted to training labels."""
    metrics = list(labels)
    modes, mu, sigma, constants = {}, [], [], {}
    for m in metrics:
        y = np.asarray(labels[m], dtype=np.float64)
        if np.all(y == y[0]):
            modes[m], t = "constant", np.zeros(1)
            constants[m] = float(y[0])
        elif np.all(y > 0):
            modes[m], t = "log", np.log(y)
        else:
            modes[m], t = "log1p", np.log1p(np.maximum(y, 0))
        mu.append(float(t.mean()))
        sigma.append(float(max(t.std(), 1e-3)))
    return {"metrics": metrics, "modes": modes, "mu": mu, "sigma": sigma,
            "constants": constants}


def encode(labels: dict[str, np.ndarray], scale: dict[str, Any]) -> np.ndarray:
    """Labels -> standardised targets, float32 [graphs, metrics]."""
    cols = []
    for i, m in enumerate(scale["metrics"]):
        y = np.asarray(labels[m], dtype=np.float64)
        t = (np.log(np.maximum(y, 1e-30)) if scale["modes"][m] == "log"
             else np.log1p(np.maximum(y, 0)))
        cols.append((t - scale["mu"][i]) / scale["sigma"][i])
    return np.stack(cols, axis=1).astype(np.float32)


def decode(z: np.ndarray, scale: dict[str, Any]) -> dict[str, np.ndarray]:
    """Standardised outputs -> metric values in their units."""
    out = {}
    for i, metric in enumerate(scale["metrics"]):
        mode = scale["modes"][metric]
        if mode == "constant":
            out[metric] = np.full(len(z), scale["constants"][metric])
            continue
        t = z[:, i] * scale["sigma"][i] + scale["mu"][i]
        # log1p metrics are counts that can be zero (operators left on the CPU): whole numbers.
        out[metric] = np.exp(t) if mode == "log" else np.rint(np.maximum(np.expm1(t), 0.0))
    return out


#: Metrics that are sums over a network's layers (time, energy, weight bytes); peak-memory
#: metrics (SRAM, arena, DRAM) are maxima over the schedule instead.
ADDITIVE_METRICS = ("latency_ms", "npu_cycles", "energy_mj", "flash_kib")


def additive(scale: dict[str, Any]) -> list[str]:
    """The learnt metrics that add up over layers, in output order."""
    return [m for m in learned(scale) if m in ADDITIVE_METRICS]


#: Peak-memory metrics: the most a planner holds at one step of the schedule (the GNN's peak
#: readout and the block predictor's smooth max; every other metric the block predictor sums).
PEAK_METRICS = ("sram_kib", "arena_kib")


def peak(scale: dict[str, Any]) -> list[str]:
    """The learnt metrics that are a peak over the schedule, in output order."""
    return [m for m in learned(scale) if m in PEAK_METRICS]


def learned(scale: dict[str, Any]) -> list[str]:
    """The metrics with a relative error to minimise (mode ``log``)."""
    return [m for m in scale["metrics"] if scale["modes"][m] == "log"]


def mean_mape(pred: dict[str, np.ndarray], labels: dict[str, np.ndarray],
              scale: dict[str, Any]) -> float:
    """Mean over the ``log`` metrics of their MAPE, %: what early stopping watches."""
    errors = [np.mean(np.abs(pred[m] / labels[m] - 1)) for m in learned(scale)]
    return float(np.mean(errors)) * 100 if errors else 0.0
