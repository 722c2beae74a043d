"""OpenTelemetry traces and metrics following the GenAI semantic conventions.

Needs the ``otel`` extra (``opentelemetry-api``; an SDK or a distro to export anything).

Traces: one ``INTERNAL`` span per logical request (``chat {model}``), parent of one
``CLIENT`` span per attempt (``chat {model}`` on the provider that ran it). Attempt spans
carry ``gen_ai.*`` request/response/usage attributes and ``asyncllm.attempt.role``
(``primary``/``retry``/``hedge``/``fallback``/``race``) and ``asyncllm.attempt.outcome``.

Errors and cancellation, following the semconv "recording errors" guidance:

* an attempt that failed: status ``ERROR``, ``error.type`` = the exception class name;
* an attempt that lost a race or hedge, or was cancelled: ``error.type = "cancelled"`` so
  it can be told apart and filtered out of latency, but status left ``UNSET``: cancelling it
  was the orchestrator's (or caller's) decision, not a failure of the provider, and errors
  that were handled "SHOULD NOT be recorded" as failures;
* the logical span is ``ERROR`` only when the request as a whole failed: a retried or
  hedged-away failure is visible on its attempt span, not on the request.

Metrics (per attempt, since each is one call to a model): ``gen_ai.client.operation.duration``
(s), ``gen_ai.client.token.usage`` (``gen_ai.token.type`` = ``input``/``output``),
``gen_ai.client.operation.time_to_first_chunk`` (s), and ``asyncllm.client.cost`` (USD, a
counter), with the semconv's advisory histogram buckets.

Answer quality (no GenAI metric exists for it; the span attribute
``gen_ai.response.finish_reasons`` does, and is set on every span with an answer, a rejected
one included): ``asyncllm.client.answers`` counts the answers attempts got, with
``gen_ai.response.finish_reasons`` (the provider's normalised finish reason, a string here),
``asyncllm.answer.finish`` (the category: ``stop``, ``length``, ``tool_calls``,
``content_filter``, ``refusal``, ``other``, ``unknown``) and booleans
``asyncllm.answer.empty``, ``asyncllm.answer.invalid_json``,
``asyncllm.answer.invalid_tool_arguments``, ``asyncllm.answer.rejected``; rejections are also
counted by reason code in ``asyncllm.client.answer.rejections``. Output tokens per answer
are ``gen_ai.client.token.usage`` with ``gen_ai.token.type = output``. User feedback
(``client.feedback``) is ``asyncllm.client.feedback`` (a counter, with ``asyncllm.feedback.label``)
and ``asyncllm.client.feedback.score`` (a histogram), under the provider and model that
answered.

Spans are started and ended explicitly with their parent passed in, never through the
current context: observer callbacks run in whichever task the orchestrator is in. The
request span's parent is the context current when ``request_started`` is called (the
caller's span, if any). No prompt or completion text is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, redact
from .._logging import get_logger
from ..quality import reason_code
from ._metrics import error_type

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .._hooks import AttemptInfo, FeedbackInfo, RequestInfo
    from .._types import ChatRequest, Response, Usage
    from ..quality import Quality

__all__ = ["OTelObserver"]

_log = get_logger("asyncllm.telemetry")

_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92)  # fmt: skip
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864)  # fmt: skip
_TTFC_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                 5.0, 7.5, 10.0)  # fmt: skip

#: Our provider kinds as ``gen_ai.provider.name`` values (others are used as they are).
_PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic"}


def _request_attributes(request: ChatRequest, model: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"}
    if model:
        attrs["gen_ai.request.model"] = model
    if request.max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attrs["gen_ai.request.temperature"] = float(request.temperature)
    if request.top_p is not None:
        attrs["gen_ai.request.top_p"] = float(request.top_p)
    if request.seed is not None:
        attrs["gen_ai.request.seed"] = request.seed
    if request.stop:
        attrs["gen_ai.request.stop_sequences"] = list(request.stop)
    return attrs


def _usage_attributes(usage: Usage | None) -> dict[str, Any]:
    if usage is None:  # the provider reported none: no token attributes, not zeros
        return {}
    attrs: dict[str, Any] = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cache_read_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    return attrs


class OTelObserver:
    """An :class:`~asyncllm._hooks.Observer` emitting OpenTelemetry spans and metrics.

    Args:
        tracer_provider: Where spans go (default: the global tracer provider).
        meter_provider: Where metrics go (default: the global meter provider).
        record_tags: Copy ``ChatRequest.tags`` onto request spans as ``asyncllm.tag.<k>``
            (off by default: tags may identify tenants).

    Raises:
        ConfigurationError: when ``opentelemetry-api`` is not installed.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        record_tags: bool = False,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "OTelObserver needs OpenTelemetry: pip install 'asyncllm[otel]'"
            ) from exc
        from .._version import __version__

        self._trace = trace
        self._tracer = trace.get_tracer("asyncllm", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("asyncllm", __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=_TTFC_BUCKETS,
        )
        self._cost = meter.create_counter(
            "asyncllm.client.cost", unit="USD", description="Spend on model calls."
        )
        self._answers = meter.create_counter(
            "asyncllm.client.answers",
            unit="{answer}",
            description="Answers received, by finish reason and quality signal.",
        )
        self._rejections = meter.create_counter(
            "asyncllm.client.answer.rejections",
            unit="{answer}",
            description="Answers rejected by the acceptance predicate, by reason code.",
        )
        self._feedback = meter.create_counter(
            "asyncllm.client.feedback",
            unit="{feedback}",
            description="Feedback attached to requests (client.feedback).",
        )
        self._feedback_score = meter.create_histogram(
            "asyncllm.client.feedback.score",
            unit="1",
            description="Scores attached to requests (client.feedback).",
        )
        self._record_tags = record_tags
        self._requests: dict[str, tuple[Span, ChatRequest]] = {}
        self._attempts: dict[tuple[str, int], Span] = {}

    # -- requests ----------------------------------------------------------------------

    def request_started(self, info: RequestInfo) -> None:
        """Open the logical request's span under the caller's current span."""
        try:
            request = info.request
            attrs = _request_attributes(request, request.model)
            attrs["asyncllm.request_id"] = info.request_id
            attrs["asyncllm.strategy"] = info.strategy
            attrs["gen_ai.request.stream"] = info.stream
            if self._record_tags and request.tags:
                for k, v in request.tags.items():
                    attrs[f"asyncllm.tag.{k}"] = v
            name = f"chat {request.model}" if request.model else "chat"
            span = self._tracer.start_span(name, attributes=attrs)
            self._requests[info.request_id] = (span, request)
        except Exception:
            _log.exception("otel.observer_failed", hook="request_started")

    def request_finished(
        self, info: RequestInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Close the request span with the answer's model, usage, or the error."""
        entry = self._requests.pop(info.request_id, None)
        if entry is None:
            return
        span = entry[0]
        try:
            span.set_attribute("asyncllm.attempts", info.attempts)
            if response is not None:
                span.set_attributes(self._response_attributes(response))
                span.set_attribute("asyncllm.cached", response.cached)
                span.set_attribute("asyncllm.response.provider", response.provider)
            if error is not None:
                self._set_error(span, error)
            elif response is None:  # a stream left before its end: the caller's choice
                span.set_attribute("asyncllm.outcome", info.extra.get("outcome", "abandoned"))
        except Exception:
            _log.exception("otel.observer_failed", hook="request_finished")
        finally:
            span.end()

    # -- attempts ----------------------------------------------------------------------

    def attempt_started(self, info: AttemptInfo) -> None:
        """Open a client span for the attempt, child of its request's span."""
        try:
            parent = self._requests.get(info.request_id)
            ctx = self._trace.set_span_in_context(parent[0]) if parent is not None else None
            attrs = _request_attributes(parent[1], info.model) if parent else {}
            attrs["gen_ai.operation.name"] = "chat"
            attrs["gen_ai.request.model"] = info.model
            provider_name = _PROVIDER_NAMES.get(info.kind, info.kind)
            attrs["gen_ai.provider.name"] = provider_name
            attrs["gen_ai.system"] = provider_name  # deprecated alias, for older backends
            attrs["asyncllm.provider"] = info.provider
            attrs["asyncllm.attempt.number"] = info.attempt
            attrs["asyncllm.attempt.role"] = info.role
            span = self._tracer.start_span(
                f"chat {info.model}",
                context=ctx,
                kind=self._trace.SpanKind.CLIENT,
                attributes=attrs,
            )
            self._attempts[(info.request_id, info.attempt)] = span
        except Exception:
            _log.exception("otel.observer_failed", hook="attempt_started")

    def attempt_first_token(self, info: AttemptInfo) -> None:
        """Mark the first token on the attempt's span."""
        span = self._attempts.get((info.request_id, info.attempt))
        if span is not None:
            span.add_event("asyncllm.first_token")

    def attempt_finished(
        self, info: AttemptInfo, response: Response | None, error: BaseException | None
    ) -> None:
        """Close the attempt's span; record duration, tokens, time to first chunk, cost."""
        span = self._attempts.pop((info.request_id, info.attempt), None)
        try:
            self._attempt_finished(span, info, response, error)
        except Exception:
            _log.exception("otel.observer_failed", hook="attempt_finished")
        finally:
            if span is not None:
                span.end()

    def _attempt_finished(
        self,
        span: Span | None,
        info: AttemptInfo,
        response: Response | None,
        error: BaseException | None,
    ) -> None:
        outcome = info.outcome or ("success" if error is None and response else "error")
        etype: str | None = None
        if outcome in ("lost", "cancelled"):
            etype = "cancelled"
        elif error is not None:
            etype = error_type(error)
        usage = info.usage if info.usage is not None else (response.usage if response else None)
        cost = info.cost_usd
        if cost is None and response is not None:
            cost = response.cost_usd
        if span is not None:
            span.set_attribute("asyncllm.attempt.outcome", outcome)
            if response is not None:
                span.set_attributes(self._response_attributes(response))
            elif usage is not None:
                span.set_attributes(_usage_attributes(usage))
            if cost is not None:
                span.set_attribute("asyncllm.cost_usd", cost)
            if etype == "cancelled":
                span.set_attribute("error.type", "cancelled")
            elif error is not None:
                self._set_error(span, error)
        provider_name = _PROVIDER_NAMES.get(info.kind, info.kind)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_name,
            "gen_ai.request.model": info.model,
            "asyncllm.attempt.role": info.role,
        }
        if response is not None:
            attrs["gen_ai.response.model"] = response.model
        if etype is not None:
            attrs["error.type"] = etype
        if info.finished is not None:
            self._duration.record(max(0.0, info.finished - info.started), attrs)
        if info.first_token_at is not None:
            self._ttfc.record(max(0.0, info.first_token_at - info.started), attrs)
        if usage is not None:
            self._tokens.record(usage.input_tokens, {**attrs, "gen_ai.token.type": "input"})
            self._tokens.record(usage.output_tokens, {**attrs, "gen_ai.token.type": "output"})
        if cost:
            self._cost.add(cost, attrs)
        if info.quality is not None:
            self._record_quality(span, info.quality, response, error, attrs)

    def _record_quality(
        self,
        span: Span | None,
        q: Quality,
        response: Response | None,
        error: BaseException | None,
        attrs: dict[str, Any],
    ) -> None:
        rejected = getattr(error, "response", None)
        answer = {k: v for k, v in attrs.items() if k != "error.type"}
        if rejected is not None:
            answer["gen_ai.response.model"] = rejected.model
        got = response if response is not None else rejected
        if got is not None and got.finish_reason is not None:
            answer["gen_ai.response.finish_reasons"] = got.finish_reason
        if span is not None:
            if rejected is not None:
                span.set_attributes(self._response_attributes(rejected))
            span.set_attribute("asyncllm.answer.finish", q.finish)
            if q.rejected is not None:
                span.set_attribute("asyncllm.answer.rejected", redact(q.rejected)[:500])
        answer.update(
            {
                "asyncllm.answer.finish": q.finish,
                "asyncllm.answer.empty": q.empty,
                "asyncllm.answer.invalid_json": q.invalid_json,
                "asyncllm.answer.invalid_tool_arguments": q.invalid_tool_arguments > 0,
                "asyncllm.answer.rejected": q.rejected is not None,
            }
        )
        self._answers.add(1, answer)
        if q.rejected is not None:
            self._rejections.add(1, {**attrs, "asyncllm.rejection.reason": reason_code(q.rejected)})

    # -- feedback ----------------------------------------------------------------------

    def feedback(self, info: FeedbackInfo) -> None:
        """Count the feedback and record its score, under who answered the request."""
        try:
            attrs: dict[str, Any] = {}
            if info.provider is not None:
                attrs["asyncllm.provider"] = info.provider
            if info.model is not None:
                attrs["gen_ai.response.model"] = info.model
            if info.label is not None:
                attrs["asyncllm.feedback.label"] = info.label
            self._feedback.add(1, attrs)
            if info.score is not None:
                self._feedback_score.record(info.score, attrs)
        except Exception:
            _log.exception("otel.observer_failed", hook="feedback")

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _response_attributes(response: Response) -> dict[str, Any]:
        attrs = _usage_attributes(response.usage)
        attrs["gen_ai.response.model"] = response.model
        if response.finish_reason is not None:
            attrs["gen_ai.response.finish_reasons"] = [response.finish_reason]
        if response.cost_usd is not None:
            attrs["asyncllm.cost_usd"] = response.cost_usd
        return attrs

    def _set_error(self, span: Span, error: BaseException) -> None:
        etype = error_type(error)
        span.set_attribute("error.type", etype)
        if etype != "cancelled":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, redact(str(error))[:500]))
