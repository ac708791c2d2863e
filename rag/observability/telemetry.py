"""Metrics and tracing of one service, built from its settings and closed with it."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.trace import Tracer

from kernel.ops_settings import ObservabilitySettings
from rag.observability.metrics import Metrics
from rag.observability.tracing import Tracing


@dataclass
class Telemetry:
    settings: ObservabilitySettings
    metrics: Metrics
    tracing: Tracing

    @classmethod
    def build(cls, settings: ObservabilitySettings) -> Telemetry:
        return cls(settings, Metrics(enabled=settings.metrics), Tracing(settings))

    @classmethod
    def quiet(cls) -> Telemetry:
        """Counting in a registry of its own and tracing nothing: for services built without settings for it."""
        return cls.build(ObservabilitySettings(tracing=False))

    @property
    def tracer(self) -> Tracer:
        return self.tracing.tracer

    def close(self) -> None:
        self.tracing.shutdown()
