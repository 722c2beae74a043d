"""Entry point of the ``asyncllm`` command. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from . import _run, _simulate


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asyncllm`` command line."""
    parser = argparse.ArgumentParser(prog="asyncllm")
    sub = parser.add_subparsers(dest="command")
    _run.add_parser(sub)
    _simulate.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
