"""What the search maximises: a documented proxy by default, or the user's own function.

PerfSAGE predicts cost, not accuracy, so without the user's accuracy estimator the search
can only maximise a stand-in for it. The built-in ones count capacity, larger is better:

* ``params`` (the default): effective int8 weights. Every weight of a layer counts
  ``(1 - sparsity) * bits / 8``: a pruned weight counts nothing, a 4-bit weight half. It
  rewards the largest network that fits the budgets and treats compression as lost
  capacity, so compression wins only where it lets a larger network fit.
* ``macs``: multiply-accumulates per inference, blind to compression: compression is then
  free and the search spends it wherever a budget binds.

Neither can tell whether a network will be accurate: not which shape of network learns the
task better at equal size, nor how much accuracy pruning or few bits cost (UDC reports that
compressed larger networks often beat dense smaller ones; a proxy cannot say when). Pass an
estimator trained on your task as ``objective`` (``module:function`` on the command line)
for anything more than a capacity ranking.
"""

from __future__ import annotations

import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfsage.errors import UsageError

if TYPE_CHECKING:
    from perfsage.udc.evolution import Candidate


@dataclass(frozen=True, slots=True)
class Objective:
    """A function to maximise over candidates, its name and whether it is only a proxy."""

    name: str
    function: Callable[[Candidate], float]
    proxy: bool
    description: str

    def __call__(self, candidate: Candidate) -> float:
        """The function's value, checked: a real, finite number."""
        value = self.function(candidate)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"objective {self.name} returned {value!r}, not a number") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise UsageError(f"objective {self.name} returned {value!r}; it must return a "
                             "finite number (larger is better)")
        return number


def effective_params(candidate: Candidate) -> float:
    """Weights kept, in int8 equivalents: sum of weights x (1 - sparsity) x bits / 8."""
    arch = candidate.arch
    kept = sum(w * (1.0 - c.sparsity) * c.bits / 8
               for w, c in zip(arch.layer_weights, candidate.layers, strict=True))
    return float(arch.params - sum(arch.layer_weights) + kept)


def macs(candidate: Candidate) -> float:
    """Multiply-accumulates per inference (compression does not change them)."""
    return float(candidate.arch.macs)


BUILT_IN: dict[str, Objective] = {
    "params": Objective("params", effective_params, True,
                        "effective int8 weights: each weight counts (1 - sparsity) x "
                        "bits / 8, larger is better"),
    "macs": Objective("macs", macs, True, "multiply-accumulates per inference, larger is "
                                          "better"),
}
DEFAULT = "params"
#: Said wherever a proxy's figures are shown.
PROXY_WARNING = ("a proxy for accuracy, not accuracy: it counts capacity and cannot tell "
                 "how well a network learns the task or what compression costs in accuracy; "
                 "pass your own estimator as the objective for that")


def resolve(objective: str | Callable[[Any], float] | Objective | None) -> Objective:
    """The objective a user named: a built-in name, ``module:function``, or a callable.

    Raises:
        UsageError: an unknown name, a module or function that cannot be imported, or
            something that is not callable.
    """
    if objective is None:
        return BUILT_IN[DEFAULT]
    if isinstance(objective, Objective):
        return objective
    if callable(objective):
        name = getattr(objective, "__qualname__", None) or type(objective).__name__
        module = getattr(objective, "__module__", None)
        return Objective(f"{module}:{name}" if module else name, objective, False,
                         "the user's objective, larger is better")
    if not isinstance(objective, str):
        raise UsageError(f"objective: {objective!r} is neither a name nor a callable; choose "
                         f"from {', '.join(BUILT_IN)}, give 'module:function' or pass a "
                         "function")
    if objective in BUILT_IN:
        return BUILT_IN[objective]
    if ":" not in objective:
        raise UsageError(f"objective: unknown objective {objective!r}; choose from: "
                         f"{', '.join(BUILT_IN)}, or give module:function")
    try:
        function = pkgutil.resolve_name(objective)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is theirs
        raise UsageError(f"objective: cannot import {objective!r} ({exc}); give "
                         "module:function with the module on the Python path") from None
    if not callable(function):
        raise UsageError(f"objective: {objective} is not a function")
    return Objective(objective, function, False, "the user's objective, larger is better")
