"""Structured events through structlog, and an observer that fans out to several.

:class:`LoggingObserver` (on by default in every ``Client``) emits one event per attempt
and one per logical request on ``structlog.get_logger("asyncllm")``:

- ``llm.attempt`` — provider, model, attempt number, role (primary, retry, hedge,
  fallback, race), outcome (success, error, lost, cancelled), latency, time to first
  token, tokens, cost, and the error's type and message when it failed;
- ``llm.request`` — strategy, stream or not, attempts, outcome, latency of the logical
  request (all attempts, from its start), who answered, tokens, cost, error;
- ``llm.feedback`` — a score or label attached with ``client.feedback(...)``, with the
  request's provider, model, latency and cost when the client still knew the request.

Attempts that got an answer also carry ``finish`` (the finish category: ``stop``,
``length``, ``tool_calls``, ``content_filter``, ``refusal``...) and, when the acceptance
predicate rejected it, ``rejected`` (the reason; the outcome is then ``error``).

Every event carries ``request_id``; the same id is bound in structlog's contextvars
(``asyncllm_request_id``) while the request runs, for the application's own events.
Successful events are ``debug`` (attempts) and ``info`` (requests); failures ``info``
(attempts: another provider may still answer) and ``warning`` (requests).

The library never calls ``structlog.configure``. Unconfigured structlog prints every
event to stdout, which a library must not impose on its users, so by default the observer
stays silent until the application has configured structlog (the stdlib ``logging``
convention for libraries). Pass ``require_configured=False`` to log regardless.
No secrets: events carry names, numbers and error messages, which drivers build without
credentials and :func:`~asyncllm._exceptions.redact` scrubs again here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._exceptions import redact
from .._logging import loaded_structlog

if TYPE_CHECKING:
    from .._hooks import AttemptInfo, FeedbackInfo, Observer, RequestInfo
    from .._types import Response

__all__ = ["CompositeObserver", "LoggingObserver"]


def _error_fields(error: BaseException | None, out: dict[str, Any]) -> None:
    if error is not None:
        out["error_type"] = type(error).__name__
        out["error"] = redact(str(error))[:500]


class LoggingObserver:
    """Logs attempts and requests as structured events (see the module docstring).

    Args:
        logger: A structlog logger (default ``structlog.get_logger("asyncllm")``).
        require_configured: Stay silent while structlog is not configured.
        log_starts: Also log ``llm.attempt_started`` / ``llm.request_started`` (debug).
    """

    __slots__ = ("_log", "log_starts", "require_configured")

    def __init__(
        self,
        logger: Any = None,
        *,
        require_configured: bool = True,
        log_starts: bool = False,
    ) -> None:
        self.require_configured = require_configured and logger is None
        self.log_starts = log_starts
        self._log: Any = logger
        if logger is None and not self.require_configured:
            import structlog  # asked to log regardless: structlog's default logger

            self._log = structlog.get_logger("asyncllm")

    def _silent(self) -> bool:
        if not self.require_configured:
            return False
        # structlog is not imported by asyncllm: not loaded means not configured.
        mod = loaded_structlog()
        if mod is None or not mod.is_configured():
            return True
        if self._log is None:
            self._log = mod.get_logger("asyncllm")
        return False

    def request_started(self, info: RequestInfo) -> None:
        """Log the start of a logical request (only with ``log_starts``)."""
        if self.log_starts and not self._silent():
            self._log.debug(
                "llm.request_started",
                request_id=info.request_id,
                strategy=info.strategy,
                stream=info.stream,
            )

    def attempt_started(self, info: AttemptInfo) -> None:
        """Log the start of an attempt (only with ``log_starts``)."""
        if self.log_starts and not self._silent():
            self._log.debug(
                "llm.attempt_started",
                request_id=info.request_id,
                provider=info.provider,
                model=info.model,
                attempt=info.attempt,
                role=info.role,
            )

    def attempt_first_token(self, info: AttemptInfo) -> None:
        """Nothing: the first token's time is part of ``llm.attempt``."""

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Log ``llm.attempt``."""
        if self._silent():
            return
        fields: dict[str, Any] = {
            "request_id": info.request_id,
            "provider": info.provider,
            "model": info.model,
            "attempt": info.attempt,
            "role": info.role,
            "outcome": info.outcome,
        }
        if info.finished is not None:
            fields["latency"] = round(info.finished - info.started, 6)
        if info.first_token_at is not None:
            fields["ttft"] = round(info.first_token_at - info.started, 6)
        if info.usage is not None:
            fields["input_tokens"] = info.usage.input_tokens
            fields["output_tokens"] = info.usage.output_tokens
        if info.cost_usd is not None:
            fields["cost_usd"] = info.cost_usd
        quality = info.quality
        if quality is not None:
            fields["finish"] = quality.finish
            if quality.rejected is not None:
                fields["rejected"] = redact(quality.rejected)[:500]
        _error_fields(error, fields)
        if info.outcome == "error":
            self._log.info("llm.attempt", **fields)
        else:
            self._log.debug("llm.attempt", **fields)

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Log ``llm.request``."""
        if self._silent():
            return
        fields: dict[str, Any] = {
            "request_id": info.request_id,
            "strategy": info.strategy,
            "stream": info.stream,
            "attempts": info.attempts,
        }
        latency = info.extra.get("latency")
        if latency is not None:
            fields["latency"] = round(latency, 6)
        if response is not None:
            fields["outcome"] = "success"
            fields["provider"] = response.provider
            fields["model"] = response.model
            if response.time_to_first_token is not None:
                fields["ttft"] = round(response.time_to_first_token, 6)
            if response.usage is not None:
                fields["input_tokens"] = response.usage.input_tokens
                fields["output_tokens"] = response.usage.output_tokens
            else:
                fields["usage_estimated"] = True
            if response.cost_usd is not None:
                fields["cost_usd"] = response.cost_usd
            self._log.info("llm.request", **fields)
            return
        if error is None or not isinstance(error, Exception):
            fields["outcome"] = info.extra.get("outcome", "cancelled")
            self._log.info("llm.request", **fields)
            return
        fields["outcome"] = "error"
        _error_fields(error, fields)
        self._log.warning("llm.request", **fields)

    def feedback(self, info: FeedbackInfo) -> None:
        """Log ``llm.feedback``."""
        if self._silent():
            return
        fields: dict[str, Any] = {"request_id": info.request_id}
        for key in ("score", "label", "provider", "model", "cost_usd", "cached"):
            value = getattr(info, key)
            if value is not None:
                fields[key] = value
        if info.latency is not None:
            fields["latency"] = round(info.latency, 6)
        if info.comment is not None:
            fields["comment"] = redact(info.comment)[:500]
        self._log.info("llm.feedback", **fields)


class CompositeObserver:
    """Several observers as one. An observer that raises is skipped (and counted), never
    allowed to fail the request it observes.

    Args:
        observers: The observers, called in order.
    """

    __slots__ = ("errors", "observers")

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers: tuple[Observer, ...] = tuple(observers)
        self.errors = 0

    def request_started(self, info: RequestInfo) -> None:
        """Tell every observer."""
        for o in self.observers:
            try:
                o.request_started(info)
            except Exception:
                self.errors += 1

    def attempt_started(self, info: AttemptInfo) -> None:
        """Tell every observer."""
        for o in self.observers:
            try:
                o.attempt_started(info)
            except Exception:
                self.errors += 1

    def attempt_first_token(self, info: AttemptInfo) -> None:
        """Tell every observer."""
        for o in self.observers:
            try:
                o.attempt_first_token(info)
            except Exception:
                self.errors += 1

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Tell every observer."""
        for o in self.observers:
            try:
                o.attempt_finished(info, response, error)
            except Exception:
                self.errors += 1

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Tell every observer."""
        for o in self.observers:
            try:
                o.request_finished(info, response, error)
            except Exception:
                self.errors += 1

    def feedback(self, info: FeedbackInfo) -> None:
        """Tell every observer that takes feedback (``feedback`` is optional)."""
        for o in self.observers:
            hook = getattr(o, "feedback", None)
            if hook is None:
                continue
            try:
                hook(info)
            except Exception:
                self.errors += 1

    def statistics(self) -> dict[str, Any]:
        """How many observers, and how many of their calls raised."""
        return {"observers": len(self.observers), "errors": self.errors}
