"""Accuracy of predicted against measured values, as the latency-predictor literature reports it.

MAPE and RMSPE in percent, the share of models predicted within +-k % (BRP-NAS reports
+-1/5/10 %), and rank agreement (Kendall's tau; Spearman's rho for LatBench comparisons).
"""

from __future__ import annotations

import numpy as np


def relative_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(pred - true) / true for every model with a non-zero measured value."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    keep = true != 0
    return (pred[keep] - true[keep]) / true[keep]


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute percentage error, %."""
    return float(np.mean(np.abs(relative_errors(pred, true)))) * 100


def rmspe(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared percentage error, %."""
    return float(np.sqrt(np.mean(relative_errors(pred, true) ** 2))) * 100


def within(pred: np.ndarray, true: np.ndarray, percent: float) -> float:
    """Share of models predicted within +-``percent`` % of the measured value, %."""
    return float(np.mean(np.abs(relative_errors(pred, true)) <= percent / 100)) * 100


def kendall_tau(pred: np.ndarray, true: np.ndarray) -> float:
    """Kendall's tau-b between predicted and measured values (nan for < 2 models)."""
    from scipy.stats import kendalltau

    return float(kendalltau(pred, true).statistic) if len(pred) > 1 else float("nan")


def spearman_rho(pred: np.ndarray, true: np.ndarray) -> float:
    """Spearman's rank correlation (nan for < 2 models)."""
    from scipy.stats import spearmanr

    return float(spearmanr(pred, true).statistic) if len(pred) > 1 else float("nan")


def summary(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Every accuracy figure for one metric on one set of models."""
    return {"n": int(len(true)), "mape": mape(pred, true), "rmspe": rmspe(pred, true),
            "within_5": within(pred, true, 5), "within_10": within(pred, true, 10),
            "kendall_tau": kendall_tau(pred, true)}
