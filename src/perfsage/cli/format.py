"""Human-readable output: numbers (300.8M MACs, 3.4 MiB) and consoles for tables."""

from __future__ import annotations

from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A Rich console that does not squeeze tables into 80 columns when piped."""
    out = Console(stderr=stderr)
    if not out.is_terminal:
        out.width = max(out.width, 120)
    return out


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
