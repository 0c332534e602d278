"""Options several commands share, defined once: the target, counts with a floor."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfsage.errors import UsageError


def add_target(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``-t/--target``, required; repeatable so that ``one_target`` can say one is wanted."""
    parser.add_argument("-t", "--target", action="append", required=True, metavar="TARGET",
                        help=f"{help_text}; see `perfsage targets`")


def one_target(args: argparse.Namespace) -> str:
    """The single target of a command that learns or scores one target at a time."""
    targets = list(dict.fromkeys(args.target))
    if len(targets) > 1:
        raise UsageError(f"-t: this command takes one target, not {len(targets)} "
                         f"({', '.join(targets)}); run it once per target")
    return targets[0]


def at_least(floor: int):
    """An argparse type: a whole number no smaller than ``floor``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < floor:
            raise argparse.ArgumentTypeError(f"{value} is less than {floor}")
        return value

    parse.__name__ = f"whole number >= {floor}"
    return parse


def folder(text: str) -> Path:
    """An argparse type: a folder to write into, which may not exist yet but is no file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is created "
                                         "if missing)")
    return path


def output_file(text: str) -> Path:
    """An argparse type: a file to write, whose folder exists and which is no folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: folder {path.parent} does not exist")
    return path
