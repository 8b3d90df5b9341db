"""``serve``'s tracing: the OpenTelemetry SDK set up from the standard ``OTEL_*`` variables.

Only when they ask for it (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_SERVICE_NAME`` set) and the SDK
is installed (``pip install '.[otel]'``). The SDK's own classes read the rest:
the resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), the sampler
(``OTEL_TRACES_SAMPLER``), the batch (``OTEL_BSP_*``), the OTLP/HTTP endpoint,
headers, timeout and compression (``OTEL_EXPORTER_OTLP_*``), and
``OTEL_SDK_DISABLED``. The SDK is imported here alone, inside ``configure``:
the library and the gateway use the API only.
"""

from __future__ import annotations

from collections.abc import Mapping

ASKING = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
)
EXPORTERS = ("otlp", "console", "none")


def configure(env: Mapping[str, str], *, install: bool = True) -> str | None:
    """Set the global tracer provider as ``env`` asks; returns a one-line warning
    when it asks for what cannot be done (no SDK, an exporter we do not know),
    None otherwise (set up, or not asked). ``install=False`` only checks (the
    parent of ``--workers``, which serves nothing, says the warning once)."""
    asked = [name for name in ASKING if env.get(name)]
    if not asked:
        return None
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name == "none":
        return None
    if exporter_name not in EXPORTERS:
        return (
            f"OTEL_TRACES_EXPORTER={exporter_name!r} is not one of {', '.join(EXPORTERS)}; "
            "serving without tracing"
        )
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        exporter: SpanExporter
        if exporter_name == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    except ImportError as exc:
        return (
            f"{asked[0]} is set, but the OpenTelemetry SDK or its OTLP exporter "
            f"is not installed ({exc.name}); "
            "pip install 'choreography-status-aggregator[otel]' to export spans; "
            "serving without tracing"
        )
    if not install:
        return None
    # Flushed and shut down at exit by the provider itself (shutdown_on_exit).
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return None
