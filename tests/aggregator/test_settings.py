"""Settings from code and from TOML; every mistake is one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator import ConfigError, Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "aggregator.toml"

MINIMAL = """
[participants.payment]
url = "http://127.0.0.1:8101/payments/{workflow_id}"
[participants.inventory]
url = "http://127.0.0.1:8102/reservations/{workflow_id}"
[participants.shipping]
url = "http://127.0.0.1:8103/shipments/{workflow_id}"
"""


def test_the_example_file_is_valid_and_documents_the_defaults() -> None:
    example = Settings.from_file(EXAMPLE)
    assert example.definition().name == "order_fulfilment"
    defaults = Settings.from_toml(MINIMAL)
    assert example.cache == defaults.cache
    assert example.deadline_ms == defaults.deadline_ms
    assert example.participants["payment"].protection == defaults.participants["payment"].protection


def test_defaults() -> None:
    settings = Settings.from_toml(MINIMAL)
    assert settings.deadline_ms == 1000
    assert settings.cache.ttl_ms == 2000 and settings.cache.stale_ms == 60_000
    payment = settings.participants["payment"]
    assert payment.timeout_ms == 500 and payment.max_body_bytes == 262_144


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deadline_ms = -1\n" + MINIMAL, "settings: deadline_ms: Input should be greater than 0"),
        ("dedline_ms = 5\n" + MINIMAL, "settings: dedline_ms: Extra inputs are not permitted"),
        (
            MINIMAL.replace("/payments/{workflow_id}", "/payments"),
            "participants.payment.url: must hold {workflow_id} exactly once",
        ),
        (
            MINIMAL.replace("http://127.0.0.1:8101/payments/", "ftp://h/"),
            "participants.payment.url: must be an absolute http:// or https:// URL",
        ),
        (
            MINIMAL.replace("127.0.0.1:8101/payments/{workflow_id}", "{workflow_id}.example/x"),
            "participants.payment.url: {workflow_id} must be in the path",
        ),
        (
            MINIMAL.replace("[participants.shipping]", "[participants.shiping]"),
            "needs participants ['shipping'] configured",
        ),
        ('workflow = "travel"\n' + MINIMAL, "'travel' is not defined"),
        ('id_pattern = "[x"\n' + MINIMAL, "settings: id_pattern: not a valid regular expression"),
        ("participants = [", "settings: not valid TOML"),
        (
            MINIMAL + "[cache]\nttl_ms = 0\nstale_ms = 0\n",
            "cache.ttl_ms: Input should be greater than 0 (and 1 more problem)",
        ),
    ],
)
def test_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        Settings.from_file(tmp_path / "missing.toml")


def test_a_declared_workflow_with_a_bad_rule_is_refused() -> None:
    text = """
workflow = "travel"
[participants.flight]
url = "http://f.test/{workflow_id}"
[workflows.travel.participants]
flight = { states = ["requested", "booked"] }
[[workflows.travel.rules]]
status = "booked"
when = { flight = ["booked"] }
"""
    with pytest.raises(
        ConfigError, match=r"no status rule covers the states \['flight.requested'\]"
    ):
        Settings.from_toml(text)


def test_environment_variables_override_single_values() -> None:
    env = {
        "STATUS_AGGREGATOR_DEADLINE_MS": "250",
        "STATUS_AGGREGATOR_PARTICIPANTS__PAYMENT__TIMEOUT_MS": "77",
        "STATUS_AGGREGATOR_GATEWAY__AUTH__ENABLED": "true",
        "STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS": '{"k-0123456789abcdef": "acme"}',
        "UNRELATED": "x",
    }
    settings = Settings.from_toml(MINIMAL, env=env)
    assert settings.deadline_ms == 250
    payment = settings.participants["payment"]
    assert payment.timeout_ms == 77
    assert payment.url == "http://127.0.0.1:8101/payments/{workflow_id}"  # the rest is kept
    assert settings.gateway.auth.keys == {"k-0123456789abcdef": "acme"}
    assert Settings.from_toml(MINIMAL).deadline_ms == 1000  # no env: no override


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        ("[gateway.auth]\nenabled = true\n", "auth is enabled but no keys are configured"),
        ('[gateway.auth]\nkeys = { "short" = "a" }\n', "a key must be 16 to 512 characters"),
        ('[gateway.auth]\nkeys = { "0123456789abcdefg" = "a b" }\n', "tenant 'a b' must be"),
        ('[gateway.auth]\ntenant_header = "X Tenant"\n', "must be a header name"),
        ('[gateway]\nlog_format = "xml"\n', "gateway.log_format: Input should be 'text' or 'json'"),
    ],
)
def test_gateway_mistakes_are_named(gateway: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_toml(MINIMAL + gateway)
