"""``asyncllm run --ray``: the same batch job on Ray Data (see ``asyncllm.ray`` and
``docs/ray.md``). Same input, output and resume contract as the local run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .._exceptions import ConfigurationError
from ._sources import check_readable

__all__ = ["add_ray_arguments", "run_on_ray"]

# Ray delivers rows as actors finish them and runs its own workers: no input-order output
# and no grace period (Ctrl-C stops the driver; rerun the command to finish).
_LOCAL_ONLY = ("ordered", "grace")


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--ray`` options of ``asyncllm run``."""
    g = p.add_argument_group("on Ray Data (needs asyncllm[ray])")
    g.add_argument("--ray", action="store_true", help="run the requests on Ray Data actors")
    g.add_argument("--ray-address", help="Ray cluster address (default: a local Ray)")
    g.add_argument("--actors", type=int, default=1, help="actors (default 1)")
    g.add_argument(
        "--redis-url",
        help="share every actor's limits, cache and budget through this Redis "
        "(needed for limits or a budget with more than one actor)",
    )


async def run_on_ray(args: argparse.Namespace, default_output: Callable[[Path], Path]) -> int:
    """Run ``asyncllm run --ray``; returns the exit code (the local run's codes)."""
    given = [f"--{n.replace('_', '-')}" for n in _LOCAL_ONLY if getattr(args, n, None)]
    if given:
        raise ConfigurationError(f"{', '.join(given)}: not available with --ray")
    if not args.config or not args.input:
        raise ConfigurationError("--ray needs --config and --input")
    check_readable(Path(args.input))  # before Ray starts or anything is printed
    try:
        from ..ray import run_file
    except ImportError as exc:
        raise ConfigurationError(str(exc)) from exc
    output = Path(args.output) if args.output else default_output(Path(args.input))
    print(f"asyncllm: config {args.config}; on Ray with {args.actors} actor(s)", file=sys.stderr)
    print(f"asyncllm: output {output} (rerun the same command to resume)", file=sys.stderr)
    counts = await run_file(
        args.config, args.input, output, address=args.ray_address, actors=args.actors,
        redis_url=args.redis_url, concurrency=args.concurrency, budget=args.budget,
        restart=args.restart, retry_errors=args.retry_errors,
        retry_transient=not args.keep_errors,
    )  # fmt: skip
    print(
        f"asyncllm run --ray: {counts['written']} records written ({counts['errors']} errors), "
        f"{counts['skipped']} already done, {counts['budget_refused']} refused by the budget, "
        f"{counts['limiter_unavailable']} refused while the shared limiter's Redis was down "
        f"(rerun to send those)",
        file=sys.stderr,
    )
    if counts["resent"]:
        print(
            f"asyncllm run --ray: sent again {counts['resent']} request(s) whose earlier "
            "record was " + ("an error" if args.retry_errors else "a transient failure"),
            file=sys.stderr,
        )
    if counts["transient"] and not args.keep_errors:
        print(
            f"asyncllm run --ray: {counts['transient']} request(s) failed in a way that may "
            "pass (provider unreachable, timing out, rate limiting or failing; deadline "
            "passed); rerun the same command to send them again",
            file=sys.stderr,
        )
    return int(counts["exit_code"])
