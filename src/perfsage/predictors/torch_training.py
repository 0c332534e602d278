"""What every torch-trained predictor shares: the relative-error loss and an early-stopped loop.

Training only: nothing on the prediction path imports this module (it imports torch).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: Weight of the log-space L1 term added to the relative error (see ``relative_loss``).
LOG_L1_WEIGHT = 0.05


def relative_loss(pred, true, sigma, log_mask):
    """Mean relative error |predicted / measured - 1| from standardised log outputs.

    ``sigma`` un-standardises each metric; metrics outside ``log_mask`` (counts that can be
    zero) get a plain L1 loss in log1p space instead.
    """
    import torch

    diff = (pred - true) * sigma
    # The clamp keeps exp() finite; the small log-space term keeps a gradient where it
    # bites, or a network that starts far too low never recovers (seen on cortex-m-tflm).
    relative = torch.abs(torch.expm1(diff.clamp(-4, 4))) + LOG_L1_WEIGHT * diff.abs()
    return torch.where(log_mask, relative, diff.abs()).mean()


def loss_weights(scale: dict[str, Any]):
    """``sigma`` and ``log_mask`` tensors of an output scaling, for ``relative_loss``."""
    import torch

    return (torch.tensor(scale["sigma"], dtype=torch.float32),
            torch.tensor([scale["modes"][m] == "log" for m in scale["metrics"]]))


@dataclass
class LoopResult:
    """How a training run ended."""

    epochs: int
    best_epoch: int
    best_score: float
    wall_s: float


def train_early_stopped(net, batches: Callable[[int], Iterable[tuple[Any, Any]]],
                        loss: Callable[[Any, Any], Any], score: Callable[[], float], *,
                        epochs: int, patience: int, lr: float, weight_decay: float = 0.0,
                        progress: Callable[[int, float], None] | None = None) -> LoopResult:
    """AdamW with cosine decay; keeps the weights of the epoch with the lowest ``score()``.

    ``batches(epoch)`` yields (inputs, targets); ``loss(net(inputs), targets)`` is minimised;
    ``score()`` (e.g. validation MAPE) is read after every epoch, and training stops after
    ``patience`` epochs without improvement. The net ends holding its best weights.
    """
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    best, best_state, best_epoch, stale, start = float("inf"), None, 0, 0, time.perf_counter()
    epoch = 0
    for epoch in range(1, epochs + 1):
        net.train()
        for inputs, targets in batches(epoch):
            opt.zero_grad()
            value = loss(net(inputs), targets)
            value.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            current = score()
        if current < best:
            best, best_epoch, stale = current, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            stale += 1
        if progress:
            progress(epoch, current)
        if stale >= patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return LoopResult(epoch, best_epoch, best, time.perf_counter() - start)
