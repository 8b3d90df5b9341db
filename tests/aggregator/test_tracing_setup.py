"""What ``serve`` makes of the OTEL_* variables (checked without setting the global
provider, which a process may set only once)."""

from __future__ import annotations

import sys

import pytest

from aggregator._tracing_setup import configure


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "gw"},
        {"OTEL_SERVICE_NAME": "gw"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        {"OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_nothing_to_say_when_not_asked_or_when_it_can_be_done(env: dict[str, str]) -> None:
    assert configure(env, install=False) is None


def test_an_unknown_exporter_is_one_line() -> None:
    warning = configure({"OTEL_TRACES_EXPORTER": "zipkin"}, install=False)
    assert warning is not None and "\n" not in warning
    assert "'zipkin'" in warning and "without tracing" in warning


def test_a_missing_sdk_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace.export", None)
    warning = configure({"OTEL_SERVICE_NAME": "gw"})
    assert warning is not None and "\n" not in warning
    assert warning.startswith("OTEL_SERVICE_NAME is set, but the OpenTelemetry SDK")
    assert "[otel]" in warning
