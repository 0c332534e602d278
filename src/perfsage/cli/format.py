"""Human-readable output: numbers (300.8M MACs, 3.4 MiB, 97,320 cycles) and consoles."""

from __future__ import annotations

import sys

#: Unit of a metric from its name's suffix: units live in names (``latency_ms``).
UNITS = {"ms": "ms", "s": "s", "mj": "mJ", "kib": "KiB", "mib": "MiB", "cycles": "cycles",
         "ops": "ops", "bytes": "B"}


def console(stderr: bool = False):
    """A Rich console that does not squeeze tables into 80 columns when piped.

    Text is shown as it is: no console markup or emoji codes, which would turn a model
    named ``kws[bold]:smile:.tflite`` into a bold smiley (and cost every cell a parse).
    """
    from rich.console import Console

    out = Console(stderr=stderr, markup=False, emoji=False)
    if not out.is_terminal:
        out.width = max(out.width, 160)
    return out


def unit(metric: str) -> str:
    """``latency_ms`` -> ``ms``; '' when the name carries no known unit."""
    return UNITS.get(metric.rsplit("_", 1)[-1].lower(), "") if "_" in metric else ""


def figure(value: float) -> str:
    """A measured or predicted figure for people: 97,320 / 146.2 / 0.1974 / 0.000123.

    Never scientific notation: four significant digits below 10,000, whole numbers with
    thousands separators above.
    """
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{int(value)}"
    text = f"{value:.4g}"
    if "e" in text:
        digits = max(0, 3 - int(f"{value:e}".split("e")[1]))
        text = f"{value:.{digits}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
    return text


def error(message: str) -> None:
    """One error line on stderr, as ``main`` prints a raised PerfSageError."""
    print(f"perfsage: error: {message}", file=sys.stderr)


def warning(message: str) -> None:
    """One warning line on stderr."""
    print(f"perfsage: warning: {message}", file=sys.stderr)


def count(n: int | float) -> str:
    """Short count with an SI suffix: 1234 -> '1.23k', 300_800_000 -> '300.8M'."""
    n = float(n)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            value = n / limit
            return f"{value:.3g}{suffix}" if value < 100 else f"{value:.1f}{suffix}"
    return f"{n:.0f}"


def size(n: int | float) -> str:
    """Byte size with a binary suffix: 1536 -> '1.5 KiB'."""
    n = float(n)
    for limit, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= limit:
            return f"{n / limit:.1f} {suffix}"
    return f"{n:.0f} B"


def shape(dims: tuple[int, ...]) -> str:
    """Tensor shape as 1x112x112x32 (a dynamic dimension shows as ?)."""
    return "x".join("?" if d < 0 else str(d) for d in dims) or "scalar"
