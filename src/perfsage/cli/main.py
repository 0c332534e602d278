"""Entry point of the ``perfsage`` command: builds the Typer app, turns errors into one line."""

from __future__ import annotations

import sys

import typer

from perfsage import __version__
from perfsage.errors import PerfSageError

app = typer.Typer(
    name="perfsage", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
    help="Predict and measure what a TFLite model costs on edge hardware.",
)


def _version(value: bool) -> None:
    if value:
        print(f"perfsage {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """PerfSAGE: latency, energy and memory of neural networks on edge devices."""


# Command name -> "module:function". Adding a command is one line here; command modules
# import heavy libraries inside their functions so that `perfsage --help` stays fast.
_COMMANDS = {
    "inspect": "perfsage.cli.inspect:inspect",
    "measure": "perfsage.cli.measure:measure", "targets": "perfsage.cli.measure:targets",
    "dataset": "perfsage.cli.dataset:app",
    "predict": "perfsage.cli.predict:predict",
    "train": "perfsage.cli.train:train",
    "evaluate": "perfsage.cli.train:evaluate",
    "compare": "perfsage.cli.compare:compare",
}


def _register() -> None:
    from importlib import import_module

    for name, target in _COMMANDS.items():
        module, attribute = target.split(":")
        command = getattr(import_module(module), attribute)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)


_register()


def main() -> None:
    """Run the CLI; any PerfSageError ends in one line on stderr and exit status 2."""
    try:
        app()
    except PerfSageError as exc:
        print(f"perfsage: error: {exc}", file=sys.stderr)
        sys.exit(2)
