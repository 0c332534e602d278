"""One error hierarchy for everything a user can get wrong.

The CLI catches :class:`PerfSageError` once, prints its message on one line and exits with
status 2; anything else escaping is a bug in PerfSAGE, not in the user's input.
"""

from __future__ import annotations

from pathlib import Path


class PerfSageError(Exception):
    """Base class of every error caused by user input or the environment."""


class ModelFileError(PerfSageError):
    """A model file is missing, unreadable or not a valid TFLite flatbuffer."""

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = str(source) if source is not None else "<bytes>"
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")

    def __reduce__(self):
        # Worker processes send errors back pickled; rebuild from the same two arguments.
        return type(self), (self.source, self.problem)


class ConversionError(PerfSageError):
    """A model in another format (ONNX, PyTorch, Keras) could not be converted to int8 TFLite."""

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = str(source) if source is not None else "<module>"
        self.problem = " | ".join(p.strip() for p in problem.splitlines() if p.strip())
        super().__init__(f"{self.source}: {self.problem}")

    def __reduce__(self):
        return type(self), (self.source, self.problem)


class UsageError(PerfSageError):
    """A command or function was called with an invalid value."""


class UnknownTargetError(PerfSageError):
    """A hardware target name is not in the registry."""

    def __init__(self, name: str, choices: list[str]) -> None:
        self.name = name
        self.choices = list(choices)
        super().__init__(f"unknown target {name!r}; choose from: {', '.join(self.choices)}")


class MeasurementError(PerfSageError):
    """A measuring tool rejected a model, failed on it, or produced output we cannot read."""

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(f"{target}: {problem}")

    def __reduce__(self):
        return type(self), (self.target, self.problem)


class HardwareError(PerfSageError):
    """A hardware description (Vela's ini) lacks a section or holds an invalid value."""


class WeightsError(PerfSageError):
    """A weights file is missing, truncated, tampered with or does not fit its config."""


class PredictionError(PerfSageError):
    """A prediction came out non-finite: weights or input far outside what they can handle.

    Never printed as ``inf``/``NaN``: a non-finite figure does not leave the program.
    """

    def __init__(self, model: str, metric: str, value: float) -> None:
        self.model, self.metric, self.value = model, metric, value
        super().__init__(f"{model}: the predicted {metric} is {value} (not a finite number); "
                         "the weights cannot predict this model")

    def __reduce__(self):
        return type(self), (self.model, self.metric, self.value)


class MissingExtraError(PerfSageError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs the optional dependencies of perfsage[{extra}]: "
                         f"pip install 'perfsage[{extra}]'")


#: Top-level modules of the optional extras, and the extra that installs each.
OPTIONAL_MODULES = {"torch": "train", "torch_geometric": "train", "lightgbm": "train",
                    "matplotlib": "train", "tensorflow": "test"}


def missing_extra(exc: ImportError) -> MissingExtraError | None:
    """The MissingExtraError an import failure stands for, or None if it is not an extra's.

    Lets the command line turn ``No module named 'torch'`` deep inside training into one
    line that names ``perfsage[train]``.
    """
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name in OPTIONAL_MODULES:
        return MissingExtraError(f"this command (it imports {name})", OPTIONAL_MODULES[name])
    return None
