"""``asyncllm simulate``: run the provider simulator as a standalone server.

It prints the base URLs (the first line is the plain base URL, for scripts to read) and
serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ..testing import LatencyLike, Simulator, heavy_tail

__all__ = ["add_parser", "run"]


def _nonneg(value: str) -> float:
    v = float(value)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _positive_int(value: str) -> int:
    v = int(value)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``simulate`` subcommand."""
    p = sub.add_parser(
        "simulate",
        help="run a local OpenAI + Anthropic compatible simulator",
        description="Serve POST /v1/chat/completions (OpenAI) and POST /v1/messages "
        "(Anthropic) with deterministic text, until Ctrl-C or SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--latency", type=_nonneg, default=0.0, help="seconds before headers")
    p.add_argument(
        "--heavy-tail",
        action="store_true",
        help="latency from heavy_tail(--latency): 10%% at 10x, 1%% at 50x",
    )
    p.add_argument("--token-delay", type=_nonneg, default=0.0, help="seconds between chunks")
    p.add_argument("--output-tokens", type=_positive_int, default=16, help="chunks per answer")
    p.add_argument("--rpm", type=_positive_int, default=None, help="requests per period")
    p.add_argument("--tpm", type=_positive_int, default=None, help="tokens per period")
    p.add_argument("--period", type=float, default=60.0, help="seconds per limit period")
    p.add_argument("--seed", type=int, default=0, help="seed of text and latency")
    p.set_defaults(func=run)


async def _serve(args: argparse.Namespace) -> None:
    latency: LatencyLike = heavy_tail(args.latency) if args.heavy_tail else args.latency
    sim = Simulator(
        host=args.host,
        port=args.port,
        latency=latency,
        token_delay=args.token_delay,
        output_tokens=args.output_tokens,
        rpm=args.rpm,
        tpm=args.tpm,
        period=args.period,
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(sim.base_url, flush=True)
        print(f"OpenAI base URL:    {sim.openai_base_url}", flush=True)
        print(f"Anthropic base URL: {sim.anthropic_base_url}", flush=True)
        await stop.wait()
        print(f"stopping; {sim.statistics()}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the simulator until interrupted."""
    if args.period <= 0:
        print("error: --period must be > 0", file=sys.stderr)
        return 2
    asyncio.run(_serve(args))
    return 0
