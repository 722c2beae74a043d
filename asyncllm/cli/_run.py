"""``asyncllm run``: the main job, a resumable batch (:func:`asyncllm.batch.run_batch`).

::

    asyncllm run                                   # the sample batch on the embedded simulator
    asyncllm run --config asyncllm.toml --input requests.jsonl --output results.jsonl

Rerunning the same command continues where a killed or interrupted run stopped. Exit codes
(``docs/batch.md``): 0 done, 1 done with error records, 2 bad input or config (nothing
sent), 3 stopped by the budget (rerun with a larger one to finish), 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from .._exceptions import AsyncLLMError, ConfigurationError
from ..batch import (
    EXIT_BAD_INPUT,
    EXIT_DONE,
    EXIT_ERRORS,
    EXIT_INTERRUPTED,
    BatchInputError,
    BatchOptions,
    RunConfig,
    estimate,
    load_config,
    run_batch,
)
from ._display import LineDisplay, RichDisplay, console_for, print_summary
from ._sources import check_readable, environment_config, sample_input

__all__ = ["add_parser"]


def _positive_float(value: str) -> float:
    v = float(value)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _nonneg_float(value: str) -> float:
    v = float(value)
    if not v >= 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _positive_int(value: str) -> int:
    v = int(value)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def add_parser(sub: Any) -> None:
    """Register ``asyncllm run``."""
    p = sub.add_parser(
        "run",
        help="run a batch of requests, resumably (the sample batch when given nothing)",
        description="Send every request of a JSONL file (OpenAI Batch API, Anthropic Message "
        "Batches or simple lines) and append one record per request to the output. Rerun "
        "the same command to continue after a kill, Ctrl-C or a budget stop.",
        epilog="exit codes: 0 done; 1 done with error records; 2 bad input or config "
        "(nothing sent); 3 stopped by the budget (rerun with a larger one); 130 interrupted. "
        "Formats and every config key: docs/batch.md.",
    )
    p.add_argument("--config", help="TOML config (providers, limits, cache, budget, batch)")
    p.add_argument("--input", help="JSONL requests (default: the shipped sample batch)")
    p.add_argument("--output", help="JSONL records (default: INPUT-NAME.results.jsonl here)")
    p.add_argument("--concurrency", type=_positive_int, help="requests in flight")
    p.add_argument("--ordered", action="store_true", default=None, help="records in input order")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="send again every request with an error record (transient failures such as "
        "an unreachable provider are sent again without it)",
    )
    p.add_argument(
        "--keep-errors",
        action="store_true",
        help="keep transient error records too: send nothing again",
    )
    p.add_argument(
        "--restart", action="store_true", help="move the existing output aside and start over"
    )
    p.add_argument("--dry-run", action="store_true", help="count and price; send nothing")
    p.add_argument("--budget", type=_nonneg_float, help="USD the batch may spend (all runs)")
    p.add_argument(
        "--grace", type=_positive_float, help="seconds in-flight requests get after Ctrl-C"
    )
    p.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=5.0,
        help="seconds between progress lines when stderr is not a terminal (default 5)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress, only the summary")
    p.add_argument(
        "--log-level",
        default="error",
        choices=("debug", "info", "warning", "error"),
        help="structured events shown on stderr (default: error)",
    )
    from ._ray import add_ray_arguments

    add_ray_arguments(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level)
    try:
        return anyio.run(_run, args)
    except (BatchInputError, ConfigurationError) as exc:
        print(f"asyncllm run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AsyncLLMError as exc:
        print(f"asyncllm run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The output could not be written (disk full, permissions): what is on disk is
        # intact up to the last whole record; rerun once the cause is fixed.
        print(f"asyncllm run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _configure_logging(level: str) -> None:
    # The library never configures structlog; this command is an application, so it does,
    # once, for its own process: events at `level` and above, rendered to stderr.
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _default_output(input_path: Path) -> Path:
    name = input_path.name.removesuffix(".jsonl")
    return Path.cwd() / f"{name}.results.jsonl"


async def _config(args: argparse.Namespace, stack: AsyncExitStack) -> tuple[RunConfig, str]:
    if args.config:
        config, where = load_config(args.config), f"config {args.config}"
    else:
        config, where = await environment_config(stack)
    # Limiters shared through Redis hold a connection pool: close them on the way out.
    for lim in config.limits.values():
        close = getattr(lim, "aclose", None)
        if close is not None:
            stack.push_async_callback(close)
    if args.budget is not None:
        config.budget = {**(config.budget or {}), "usd": args.budget}
    return config, where


async def _watch_signals(stop: anyio.Event, cancel: anyio.Event, grace: float) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for sig in signals:
            name = signal.Signals(sig).name
            if not stop.is_set():
                print(
                    f"\nasyncllm run: {name}: no new requests; in-flight ones get up to "
                    f"{grace:g}s to finish, then the output is flushed (again to stop now)",
                    file=sys.stderr,
                    flush=True,
                )
                stop.set()
            elif not cancel.is_set():
                print(
                    f"\nasyncllm run: {name} again: cancelling the requests in flight; the "
                    f"answers so far are flushed, rerun the same command to send the rest",
                    file=sys.stderr,
                    flush=True,
                )
                cancel.set()


async def _run(args: argparse.Namespace) -> int:
    if args.ray and not args.dry_run:  # a dry run sends nothing: the same anywhere
        from ._ray import run_on_ray

        return await run_on_ray(args, _default_output)
    input_path = Path(args.input) if args.input else sample_input()
    check_readable(input_path)  # before the simulator starts or anything is printed
    console = console_for(sys.stderr)
    async with AsyncExitStack() as stack:
        config, where = await _config(args, stack)
        output = Path(args.output) if args.output else _default_output(input_path)
        print(f"asyncllm: {where}; strategy={config.strategy}", file=sys.stderr)
        print(f"asyncllm: input {input_path}", file=sys.stderr)
        resume = "" if args.dry_run else " (rerun the same command to resume)"
        print(f"asyncllm: output {output}{resume}", file=sys.stderr)
        if args.dry_run:
            est = await estimate(
                config,
                input_path,
                output,
                retry_errors=args.retry_errors,
                retry_transient=not args.keep_errors,
            )
            budget = f" of a ${est.budget_usd:.4f} budget" if est.budget_usd is not None else ""
            plural = "" if est.bad_lines == 1 else "s"
            print(
                f"dry run: {est.requests} requests, {est.done} already done, "
                f"{est.to_send} to send, {est.bad_lines} bad line{plural}; worst case "
                f"${est.worst_case_usd:.4f} (spent so far ${est.spent_usd:.4f}{budget})"
                + (f"; {est.unpriced} with an unknown price" if est.unpriced else "")
                + (f"; {est.errors} error records kept" if est.errors else "")
            )
            # As the run would end: with error records (kept, or from bad lines), exit 1.
            return EXIT_ERRORS if est.bad_lines or est.errors else EXIT_DONE
        options = BatchOptions(
            concurrency=args.concurrency,
            ordered=args.ordered,
            retry_errors=args.retry_errors,
            retry_transient=not args.keep_errors,
            restart=args.restart,
            grace_period=args.grace,
        )
        grace = args.grace or config.batch.grace_period
        stop, cancel = anyio.Event(), anyio.Event()
        display: RichDisplay | LineDisplay
        if args.quiet:
            display = LineDisplay(sys.stderr, float("inf"))
        elif sys.stderr.isatty():
            display = RichDisplay(console)
        else:
            display = LineDisplay(sys.stderr, args.progress_interval)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, stop, cancel, grace)
                with display:
                    summary = await run_batch(
                        config,
                        input_path,
                        output,
                        options=options,
                        progress=display.update,
                        stop=stop,
                        cancel=cancel,
                    )
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The task group wraps what run_batch raised: report the error itself.
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                raise group.exceptions[0] from None
            raise
    print_summary(summary, console)
    print(summary.budget_line(), file=sys.stderr)
    if summary.status == "budget":
        print(
            "asyncllm run: the budget stopped the batch; rerun with a larger budget "
            "(--budget or [budget] usd) to finish the pending requests",
            file=sys.stderr,
        )
    elif summary.status == "interrupted":
        print("asyncllm run: interrupted; rerun the same command to continue", file=sys.stderr)
    p = summary.progress
    if p.resent:
        print(
            f"asyncllm run: sent again {p.resent} request(s) whose earlier record was "
            + ("an error" if args.retry_errors else "a transient failure"),
            file=sys.stderr,
        )
    if p.transient and not args.keep_errors:
        print(
            f"asyncllm run: {p.transient} request(s) failed in a way that may pass (provider "
            "unreachable, timing out, rate limiting or failing; deadline passed); rerun the "
            "same command to send them again",
            file=sys.stderr,
        )
    return summary.exit_code
