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


class WeightsError(PerfSageError):
    """A weights file is missing, truncated, tampered with or does not fit its config."""
