"""Telemetry: metrics, OpenTelemetry traces and metrics, log redaction.

* :class:`MetricsObserver`: in-process counters and latency quantiles (``statistics()``).
* :class:`OTelObserver`: OpenTelemetry spans and metrics (GenAI semantic conventions;
  needs the ``otel`` extra).
* :func:`redact_secrets`: a structlog processor that masks API keys.
* :class:`LoggingObserver`: structured ``llm.attempt`` / ``llm.request`` events through
  structlog (on by default in every client).
* :class:`CompositeObserver`: several observers as one.

Pass observers as ``Client(..., observers=[...])``.
"""

from __future__ import annotations

from ._histogram import LogHistogram
from ._log import CompositeObserver, LoggingObserver
from ._metrics import MetricsObserver
from ._otel import OTelObserver
from ._redact import redact_secrets, redact_value

__all__ = [
    "CompositeObserver",
    "LogHistogram",
    "LoggingObserver",
    "MetricsObserver",
    "OTelObserver",
    "redact_secrets",
    "redact_value",
]
