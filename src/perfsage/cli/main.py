"""Entry point of the ``perfsage`` command: argparse, one line and exit 2 for every user error.

The command line is argparse (the standard library, as Vela's is) rather than a framework:
`perfsage predict` on a small model should cost little more than importing NumPy, and a
framework's imports alone used to cost more than the whole prediction. Only the module of
the command being run is imported; ``perfsage --help`` imports none of them.
"""

from __future__ import annotations

import os

# One BLAS thread unless the user asks for more, set before NumPy loads. PerfSAGE's matrices
# are small (a batch of graphs by 128 features); OpenBLAS starts a thread per core at import
# and they spin waiting for work, which doubled the CPU a one-model `perfsage predict` costs
# (0.24 s against 0.13 s, measured side by side) for no speed-up.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402 - after the environment is set
import sys  # noqa: E402
from importlib import import_module  # noqa: E402

from perfsage import __version__
from perfsage.errors import PerfSageError, UsageError, missing_extra

#: Command -> (module, one-line summary). Adding a command is one line here plus a module
#: with ``configure(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("perfsage.cli.predict", "predict latency, energy and memory of models, "
                                        "without running a tool"),
    "measure": ("perfsage.cli.measure", "measure models with the real tools (Vela, LiteRT, "
                                        "TFLite Micro)"),
    "inspect": ("perfsage.cli.inspect", "every layer of models: op, shape, MACs, params, "
                                        "bytes"),
    "convert": ("perfsage.cli.convert", "ONNX, PyTorch (.pt2), Keras, SavedModel to int8 TFLite"),
    "compress": ("perfsage.cli.compress", "prune and cluster weights; costs before and after"),
    "targets": ("perfsage.cli.targets", "hardware targets, their metrics and settings"),
    "dataset": ("perfsage.cli.dataset", "generate, label, summarise and export datasets"),
    "train": ("perfsage.cli.train", "train the PerfSAGE network on a dataset's labels"),
    "adapt": ("perfsage.cli.adapt", "fit PerfSAGE to your board from a CSV of measured models"),
    "evaluate": ("perfsage.cli.evaluate", "accuracy of trained weights on a dataset split"),
    "compare": ("perfsage.cli.compare", "every predictor at growing training sizes"),
    "search": ("perfsage.cli.search", "the best models of a search space within hardware budgets"),
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``perfsage: error: ...``), exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UsageError(f"{self.prog.removeprefix('perfsage ')}: {message} "
                         f"(see `{self.prog} --help`)")


def _overview() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "commands:\n" + "\n".join(lines) + "\n\nRun `perfsage COMMAND --help` for its options."


def _root_parser() -> Parser:
    parser = Parser(prog="perfsage", description="Predict and measure what a neural network "
                    "costs on edge hardware: latency, energy and memory.",
                    usage="perfsage [--version] COMMAND ...", epilog=_overview(),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"perfsage {__version__}")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return parser


def command_parser(name: str) -> tuple[Parser, object]:
    """The parser of one command, built from its module's ``configure``."""
    module = import_module(COMMANDS[name][0])
    summary = module.__doc__.split("\n\n")[0]  # "`perfsage X`: what it does."
    parser = Parser(prog=f"perfsage {name}", description=summary.split(": ", 1)[-1],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    module.configure(parser)
    return parser, module


def run(argv: list[str]) -> int:
    """Parse ``argv`` (without the program name) and run its command; the exit status."""
    root = _root_parser()
    if not argv or argv[0] in ("-h", "--help"):
        root.print_help()
        return 0 if argv else 2
    if argv[0].startswith("-"):
        root.parse_args(argv[:1])  # --version exits; anything else is a usage error
    name = argv[0]
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r}; choose from: {', '.join(COMMANDS)}")
    parser, module = command_parser(name)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a PerfSageError (the user's input or environment) is one line and exit 2."""
    try:
        status = run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # a reader that left shows here, not at exit
    except PerfSageError as exc:
        print(f"perfsage: error: {_one_line(str(exc))}", file=sys.stderr)
        status = 2
    except BrokenPipeError:  # `perfsage ... | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    except OSError as exc:  # the environment's refusal (a full disk, no permission)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"perfsage: error: {where}{exc.strerror or exc}", file=sys.stderr)
        status = 2
    except ImportError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(f"perfsage: error: {extra}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("perfsage: interrupted", file=sys.stderr)
        status = 130
    sys.exit(status)


def _one_line(text: str) -> str:
    """A message folded onto one line (tools' messages come with newlines)."""
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())
