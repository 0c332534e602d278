"""Run the Vela compiler on model bytes and collect its raw output (summary CSV + console).

Vela is called in-process through its command-line entry point ``ethosu.vela.vela.main``
with exactly the arguments the ``vela`` command would get: a process start costs ~0.35 s
here against ~10 ms to compile a small model. :func:`run_vela_cli` runs the real command
line instead, so tests can check that both give the same figures. Parsing lives in
:mod:`perfsage.targets.vela_summary`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from perfsage.errors import MeasurementError

# Prediction reads VelaOptions from here without compiling anything, so what compiling
# needs (temporary folders, processes, output capture) is imported where it is used.

#: The config file bundled with Vela, named as Vela's --config expects it.
VELA_CONFIG = "Arm/vela.ini"
_MODEL_STEM = "model"


@dataclass(frozen=True, slots=True)
class VelaOptions:
    """The Vela command-line options that define an Ethos-U target."""

    accelerator_config: str
    system_config: str
    memory_mode: str
    optimise: str = "Performance"  # Vela's default, spelt out so it is part of the settings
    config: str = VELA_CONFIG

    def args(self, model_path: Path, output_dir: Path) -> list[str]:
        """Arguments for ``vela`` (without the program name)."""
        return [
            str(model_path), "--config", self.config,
            "--accelerator-config", self.accelerator_config,
            "--system-config", self.system_config, "--memory-mode", self.memory_mode,
            "--optimise", self.optimise, "--output-dir", str(output_dir),
        ]


@dataclass(frozen=True, slots=True)
class VelaOutput:
    """What one Vela run leaves behind: its summary CSV and everything it printed."""

    summary_csv: str
    console: str


def config_path(config: str = VELA_CONFIG) -> Path:
    """Absolute path of a config file bundled with Vela (for hashing it into settings).

    Found where Vela looks (``ethosu/config_files``, beside the ``vela`` package) without
    importing Vela, which takes 0.2 s: the prediction path reads the ini too.
    """
    spec = find_spec("ethosu.vela")
    if spec is None or not spec.submodule_search_locations:
        raise MeasurementError("vela", "Vela (ethos-u-vela) is not installed")
    return Path(next(iter(spec.submodule_search_locations))).parent / "config_files" / config


def _collect(target: str, options: VelaOptions, out_dir: Path, console: str) -> VelaOutput:
    csv_path = out_dir / f"{_MODEL_STEM}_summary_{options.system_config}.csv"
    if not csv_path.is_file():
        raise MeasurementError(target, f"Vela wrote no summary: {_tail(console)}")
    return VelaOutput(csv_path.read_text(), console)


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def run_vela(model_bytes: bytes, options: VelaOptions, *, target: str = "vela") -> VelaOutput:
    """Compile a model with Vela in this process; its console output is captured, not shown.

    Raises:
        MeasurementError: Vela rejected the model or failed while compiling it.
    """
    import tempfile

    from ethosu.vela import vela

    from perfsage.targets.capture import capture_output

    with tempfile.TemporaryDirectory(prefix="perfsage-vela-") as tmp:
        folder = Path(tmp)
        model_path = folder / f"{_MODEL_STEM}.tflite"
        model_path.write_bytes(model_bytes)
        out_dir = folder / "out"
        status: int | None = None
        error: str | None = None
        recursion_limit = sys.getrecursionlimit()  # vela.main sets it to its own default
        with capture_output() as captured:
            try:
                status = vela.main(options.args(model_path, out_dir))
            except SystemExit as exc:  # argparse errors
                status = exc.code if isinstance(exc.code, int) else 2
            except Exception as exc:  # Vela raises all kinds on models it cannot handle
                error = f"{type(exc).__name__}: {exc}"
            finally:
                sys.setrecursionlimit(recursion_limit)
        if error is not None:
            raise MeasurementError(target, f"Vela failed: {error}")
        if status:
            raise MeasurementError(target, f"Vela exited with {status}: {_tail(captured.text)}")
        return _collect(target, options, out_dir, captured.text)


def _vela_command() -> list[str]:
    """The ``vela`` console script installed next to this Python, else on PATH."""
    import shutil

    beside = Path(sys.executable).with_name("vela")
    found = str(beside) if beside.is_file() else shutil.which("vela")
    if found is None:
        raise MeasurementError("vela", "the vela command is not installed")
    return [found]


def run_vela_cli(model_bytes: bytes, options: VelaOptions, *, target: str = "vela",
                 timeout_s: float = 120) -> VelaOutput:
    """Compile a model with the ``vela`` command line in a child process (for checks)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="perfsage-vela-cli-") as tmp:
        folder = Path(tmp)
        model_path = folder / f"{_MODEL_STEM}.tflite"
        model_path.write_bytes(model_bytes)
        out_dir = folder / "out"
        proc = subprocess.run(
            [*_vela_command(), *options.args(model_path, out_dir)],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )
        console = proc.stdout + proc.stderr
        if proc.returncode:
            raise MeasurementError(target, f"vela exited with {proc.returncode}: "
                                           f"{_tail(console)}")
        return _collect(target, options, out_dir, console)
