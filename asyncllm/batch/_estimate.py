"""``--dry-run``: how many requests a batch would send and the most they could cost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cost import DEFAULT_MAX_TOKENS, LOCAL_KINDS, worst_case
from ..orchestrator import Hedge
from ._config import RunConfig, config_prices
from ._input import BatchItem, parse_line
from ._output import read_output
from ._scan import read_lines, scan_input

__all__ = ["Estimate", "estimate"]


@dataclass(slots=True, frozen=True)
class Estimate:
    """What a batch would do, computed before anything is sent.

    Attributes:
        requests: Requests in the input (non-blank lines).
        done: Of those, already answered in the output (skipped).
        to_send: Requests that would be sent (bad lines are recorded, not sent).
        bad_lines: Lines that would become error records.
        worst_case_usd: The most the requests to send could cost: each one's estimated
            input plus its ``max_tokens`` (or the default output cap of
            ``DEFAULT_MAX_TOKENS``) at the priciest configured provider, times the legs
            the strategy may send at once (race: every provider; hedge: 2; fallback: 1).
            Retries are not included.
        unpriced: Requests whose price is unknown for some provider (counted as 0).
        spent_usd: What earlier runs of this batch spent (from the output).
        budget_usd: The config's budget, if any.
        errors: Error records the output keeps (not sent again): with them, or with bad
            lines, the run ends "with errors" (exit 1).
    """

    requests: int
    done: int
    to_send: int
    bad_lines: int
    worst_case_usd: float
    unpriced: int
    spent_usd: float
    budget_usd: float | None
    errors: int = 0


def _legs(config: RunConfig) -> int:
    if config.strategy == "race":
        return len(config.providers)
    # A hedge sends up to max_attempts legs (a primary and its backups): the default's.
    return Hedge().max_attempts if config.strategy == "hedge" else 1


async def estimate(
    config: RunConfig,
    input: str | Path,
    output: str | Path,
    *,
    retry_errors: bool = False,
    retry_transient: bool = True,
) -> Estimate:
    """Count the requests of ``input`` a run would send (not yet in ``output``, or with an
    error record it would send again) and price their worst case.

    Reads both files; changes neither and sends nothing.

    Raises:
        BatchInputError: unreadable input or duplicate ids.
    """
    scan = await scan_input(input)
    state = read_output(
        output,
        exact_ids=scan.exact_ids,
        retry_errors=retry_errors,
        retry_transient=retry_transient,
    )
    prices = config_prices(config)
    rule = config.model_rule()
    legs = _legs(config)
    done = to_send = bad = unpriced = 0
    worst = 0.0
    async for lineno, raw in read_lines(input):
        parsed = parse_line(raw, lineno, rule=rule)
        if parsed is None:
            continue
        if parsed.custom_id is not None and parsed.custom_id in state.done:
            done += 1
            continue
        if not isinstance(parsed, BatchItem):
            bad += 1
            continue
        to_send += 1
        most = 0.0
        priced = True
        for p in config.providers:
            model = parsed.request.model or p.default_model or ""
            usd = worst_case(
                prices,
                parsed.request,
                provider=p.name,
                kind=p.kind,
                model=model,
                local=p.local or p.kind in LOCAL_KINDS,
                # The cap a provider's wire sends when a line sets none (Anthropic's
                # default_max_tokens): what the budget reserves for it.
                default_max_tokens=getattr(p, "default_max_tokens", None) or DEFAULT_MAX_TOKENS,
            )
            if usd is None:
                priced = False
            else:
                most = max(most, usd)
        unpriced += not priced
        worst += most * legs
    return Estimate(
        requests=scan.requests,
        done=done,
        to_send=to_send,
        bad_lines=bad,
        worst_case_usd=worst,
        unpriced=unpriced,
        spent_usd=state.spent_usd,
        budget_usd=config.budget_usd,
        errors=state.errors,
    )
