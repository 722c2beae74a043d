"""Entry point of the ``asyncllm`` command (subcommands are added by their issues)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asyncllm`` command line."""
    parser = argparse.ArgumentParser(prog="asyncllm")
    parser.add_subparsers(dest="command")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
    return 0
