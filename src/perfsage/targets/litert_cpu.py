"""The host CPU as LiteRT runs a model: XNNPACK, one thread, timed on this machine.

Latency is the median of ``runs`` timed invokes after ``warmup`` untimed ones, measured with
the machine lock held exclusively (no other PerfSAGE measurement runs meanwhile). A round
whose p10-p90 spread exceeds ``max_spread`` x median is timed again, up to ``max_rounds``
times; the narrowest round is kept.

``arena_kib`` is the C heap the interpreter holds after ``allocate_tensors`` and one
inference: the growth of glibc's bytes-in-use (``mallinfo2``) over the model's load. LiteRT's
Python API does not expose its arena size, so this covers everything the load allocated:
the tensor arena, XNNPACK's packed weights and workspace, and the runtime's own structures.
The first model a process loads is loaded twice and measured the second time, so LiteRT's
one-time global set-up is not charged to it.
"""

from __future__ import annotations

import gc
import platform
import time
from typing import Any

import numpy as np

from perfsage.errors import MeasurementError
from perfsage.targets.base import Metric, Target, tool_version
from perfsage.targets.capture import capture_output
from perfsage.targets.heap import heap_available, heap_in_use
from perfsage.targets.timing import stable_round


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: Prefixes of the CPU feature flags XNNPACK picks its kernels by (x86, then Arm).
_SIMD_PREFIXES = ("sse", "ssse", "avx", "fma", "f16c", "amx", "asimd", "sve", "i8mm", "bf16",
                  "fphp", "dotprod")


def _cpu_features() -> str:
    """The CPU's SIMD feature flags, sorted: what separates two CPUs of one model name.

    LiteRT's int8 kernels differ by instruction set (two "AMD EPYC" machines measured 4x
    apart on one model, one with AVX-512, one with AVX2 only), so a latency label
    names them in its settings.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1].split()
                    return " ".join(sorted({x for x in flags if x.startswith(_SIMD_PREFIXES)}))
    except OSError:
        pass
    return "unknown"


def _inputs(interpreter, seed: int) -> list[tuple[int, np.ndarray]]:
    """Random inputs of each input tensor's shape and dtype, the same for every run."""
    rng = np.random.default_rng(seed)
    feeds = []
    for detail in interpreter.get_input_details():
        shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
        if dtype == np.bool_:
            value = rng.integers(0, 2, shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)
        else:
            value = rng.standard_normal(shape).astype(dtype)
        feeds.append((detail["index"], value))
    return feeds


class CpuLiteRT(Target):
    """This machine's CPU running the model with LiteRT's XNNPACK delegate on one thread."""

    name = "cpu-litert"
    measured_on_host = True
    deterministic = False
    needs_quiet_machine = True
    metrics = {
        "latency_ms": Metric("ms", "median of the timed invokes"),
        "latency_p10_ms": Metric("ms", "10th percentile of the timed invokes"),
        "latency_p90_ms": Metric("ms", "90th percentile of the timed invokes"),
        "latency_cv": Metric("ratio", "standard deviation / mean of the timed invokes"),
        "arena_kib": Metric("KiB", "C heap the interpreter holds after loading and one "
                                   "inference (glibc mallinfo2 growth)"),
    }

    def __init__(self, *, runs: int = 50, warmup: int = 5, max_rounds: int = 3,
                 max_spread: float = 0.25, seed: int = 0) -> None:
        if runs < 1 or warmup < 1 or max_rounds < 1 or max_spread <= 0:
            raise ValueError("runs, warmup and max_rounds must be >= 1, max_spread > 0")
        self.runs, self.warmup, self.max_rounds = runs, warmup, max_rounds
        self.max_spread, self.seed = max_spread, seed
        self._primed = False

    def load(self) -> None:
        """Import LiteRT's interpreter once, before the first model."""
        from ai_edge_litert import interpreter  # noqa: F401

    def _settings(self) -> dict[str, Any]:
        return {
            "tool": "ai-edge-litert",
            "tool_version": tool_version("ai-edge-litert"),
            "op_resolver": "BUILTIN (XNNPACK delegate)",
            "num_threads": 1,
            "runs": self.runs, "warmup": self.warmup, "max_rounds": self.max_rounds,
            "max_spread": self.max_spread, "input_seed": self.seed,
            "arena_method": "glibc mallinfo2 bytes-in-use growth over load + first invoke",
            "host": {"machine": platform.machine(), "cpu": _cpu_model(),
                     "simd": _cpu_features()},
        }

    def _load_model(self, model_bytes: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with capture_output() as log:
            try:
                interpreter = Interpreter(
                    model_content=model_bytes, num_threads=1,
                    experimental_op_resolver_type=OpResolverType.BUILTIN)
                interpreter.allocate_tensors()
                for index, value in _inputs(interpreter, self.seed):
                    interpreter.set_tensor(index, value)
                interpreter.invoke()
            except Exception as exc:  # LiteRT raises ValueError/RuntimeError on bad models
                error = f"{type(exc).__name__}: {exc}".strip()
            else:
                return interpreter
        raise MeasurementError(self.name, f"LiteRT failed: {error} {log.text.strip()}".strip())

    def _measure(self, model_bytes: bytes) -> dict[str, float]:
        if not heap_available():
            raise MeasurementError(self.name, "arena_kib needs glibc 2.33+ (mallinfo2)")
        if not self._primed:  # LiteRT's one-time global set-up (~400 KiB) is not the model's
            self._load_model(model_bytes)
            self._primed = True
        gc.collect()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            before = heap_in_use()
            interpreter = self._load_model(model_bytes)
            arena = heap_in_use() - before
            invoke = interpreter.invoke
            for _ in range(self.warmup - 1):
                invoke()

            def timed_round() -> list[float]:
                times = []
                for _ in range(self.runs):
                    start = time.perf_counter_ns()
                    invoke()
                    times.append(time.perf_counter_ns() - start)
                return [t * 1e-9 for t in times]

            stats, _ = stable_round(timed_round, max_spread=self.max_spread,
                                    max_rounds=self.max_rounds)
        finally:
            if gc_was_enabled:
                gc.enable()
        return {
            "latency_ms": stats.median_ms, "latency_p10_ms": stats.p10_ms,
            "latency_p90_ms": stats.p90_ms, "latency_cv": stats.cv,
            "arena_kib": max(arena, 0) / 1024,
        }
