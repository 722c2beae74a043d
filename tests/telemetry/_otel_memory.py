"""An ``OTelObserver`` on the OpenTelemetry SDK, spans and metrics kept in memory."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asyncllm.telemetry import OTelObserver


class InMemoryOtel:
    """``observer`` exports every finished span to ``exporter`` at once (no batching) and
    records metrics for ``reader``; call :meth:`shutdown` when done."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = OTelObserver(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def shutdown(self) -> None:
        """Shut both SDK providers down."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
