"""What every converter run shares: its chatter kept off the terminal, its failure one line.

The converters print progress bars, MLIR statistics and deprecation warnings, some from C++
straight to file descriptors 1 and 2; `perfsage predict --json` promises machine-readable
stdout and every error is one line. While a converter runs, Python's and C++'s stdout and
stderr go to a temporary file, dropped afterwards: a failure is reported by the exception's
own message.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from importlib import import_module

from perfsage.errors import ConversionError, MissingExtraError, PerfSageError

#: Longest converter message kept in a ConversionError (MLIR dumps run to pages).
MESSAGE_CHARS = 400


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send Python's and C++'s stdout and stderr to a scratch file until the block ends."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile("w+") as scratch:
        try:
            os.dup2(scratch.fileno(), 1)
            os.dup2(scratch.fileno(), 2)
            with contextlib.redirect_stdout(scratch), contextlib.redirect_stderr(scratch):
                yield
        finally:
            scratch.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message with its type, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 3] + "..."


@contextlib.contextmanager
def converting(source: object, converter: str, doing: str = "convert") -> Iterator[None]:
    """Run a converter quietly; its failure becomes a one-line :class:`ConversionError`.

    ``doing`` completes "<converter> could not ... it" (``read`` for loaders).
    """
    try:
        with quiet():
            yield
    except PerfSageError:
        raise
    except Exception as exc:
        raise ConversionError(source, f"{converter} could not {doing} it: "
                                      f"{one_line(exc)}") from exc


def require(module: str, what: str):
    """Import ``module`` of the convert extra, or raise MissingExtraError naming the extra."""
    try:
        with quiet():  # torchao, TensorFlow and absl announce themselves on import
            return import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(f"{what} (it imports {exc.name})", "convert") from None
