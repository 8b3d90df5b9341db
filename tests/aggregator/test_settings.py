"""Settings from code and from TOML; every mistake is one line naming the field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import get_origin

import pytest
from pydantic import BaseModel

from aggregator import ConfigError, Settings
from aggregator._settings import ParticipantSettings

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


def test_a_declared_workflow_says_when_it_is_over() -> None:
    text = """
workflow = "travel"
[participants.flight]
url = "http://f.test/{workflow_id}"
[workflows.travel.participants]
flight = { states = ["requested", "booked", "refused"] }
[[workflows.travel.rules]]
status = "travel"
when = { flight = ["requested", "booked", "refused"] }
[[workflows.travel.final]]
flight = ["booked", "refused"]
"""
    definition = Settings.from_toml(text).definition()
    assert definition.is_final({"flight": "refused"})
    assert not definition.is_final({"flight": "requested"})


def test_environment_variables_override_single_values() -> None:
    env = {
        "STATUS_AGGREGATOR_DEADLINE_MS": "650",
        "STATUS_AGGREGATOR_PARTICIPANTS__PAYMENT__TIMEOUT_MS": "77",
        "STATUS_AGGREGATOR_GATEWAY__AUTH__ENABLED": "true",
        "STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS": '{"k-0123456789abcdef": "acme"}',
        "UNRELATED": "x",
        "STATUS_AGGREGATOR_CONFIG": "/etc/aggregator.toml",  # the file's name, not a setting
    }
    settings = Settings.from_toml(MINIMAL, env=env)
    assert settings.deadline_ms == 650
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "deadline_ms = true\n" + MINIMAL,
            "settings: deadline_ms: Input should be a valid integer",
        ),
        (
            'deadline_ms = "800"\n' + MINIMAL,
            "settings: deadline_ms: Input should be a valid integer",
        ),
        (
            "deadline_ms = 800.0\n" + MINIMAL,
            "settings: deadline_ms: Input should be a valid integer",
        ),
        (
            MINIMAL + '[participants.payment.protection]\nretry = "yes"\n',
            "settings: participants.payment.protection.retry: Input should be a valid boolean",
        ),
        (
            MINIMAL + "[gateway]\nhost = 127\n",
            "settings: gateway.host: Input should be a valid string",
        ),
    ],
)
def test_a_value_of_the_wrong_type_in_the_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(text)
    assert str(caught.value) == message


def test_a_whole_number_is_a_valid_ratio() -> None:
    text = MINIMAL + "[participants.payment.protection]\nretry_budget_ratio = 1\n"
    assert Settings.from_toml(text).participants["payment"].protection.retry_budget_ratio == 1.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STATUS_AGGREGATOR_DEADLNE_MS": "5"}, "STATUS_AGGREGATOR_DEADLNE_MS: no such setting"),
        (
            {"STATUS_AGGREGATOR_CACHE__TTL": "5"},
            "STATUS_AGGREGATOR_CACHE__TTL: no such setting",
        ),
        (
            {"STATUS_AGGREGATOR_DEADLINE_MS__X": "5"},
            "STATUS_AGGREGATOR_DEADLINE_MS__X: no such setting",
        ),
        (
            {"STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS": "{oops"},
            "environment: STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS: '{oops' is not a JSON value",
        ),
        (
            {"STATUS_AGGREGATOR_PARTICIPANTS__PAYMENT__PROTECTION__RETRY": "yes"},
            "PROTECTION__RETRY: 'yes' is not a JSON value",
        ),
        (
            {"STATUS_AGGREGATOR_DEADLINE_MS": '"800"'},
            "deadline_ms: Input should be a valid integer",
        ),
    ],
)
def test_environment_mistakes_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(MINIMAL, origin="a.toml", env=env)
    assert message in str(caught.value)


def test_environment_values_take_their_setting_s_type() -> None:
    env = {
        "status_aggregator_gateway__host": "0.0.0.0",
        "STATUS_AGGREGATOR_GATEWAY__LOG_FORMAT": "json",
        "STATUS_AGGREGATOR_ID_PATTERN": "[0-9]{1,8}",
        "STATUS_AGGREGATOR_PARTICIPANTS__PAYMENT__PROTECTION__RETRY": "false",
        "STATUS_AGGREGATOR_PARTICIPANTS__PAYMENT__PROTECTION__RATE_LIMIT": "null",
        "STATUS_AGGREGATOR_PARTICIPANTS__SHIPPING__URL": "http://s.test/{workflow_id}",
    }
    settings = Settings.from_toml(MINIMAL, env=env)
    assert settings.gateway.host == "0.0.0.0" and settings.gateway.log_format == "json"
    assert settings.id_pattern == "[0-9]{1,8}"
    assert settings.participants["payment"].protection.retry is False
    assert settings.participants["shipping"].url == "http://s.test/{workflow_id}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "[cache]\nttl_ms = 20000\n",
            "cache.ttl_ms (20000) must not exceed cache.terminal_ttl_ms (10000)",
        ),
        (
            "[cache]\nttl_ms = 5000\nterminal_ttl_ms = 50000\nstale_ms = 1000\n",
            "cache.ttl_ms (5000) must not exceed cache.stale_ms (1000)",
        ),
        (
            "deadline_ms = 400\n",
            "participants.payment.timeout_ms (500) must not exceed deadline_ms (400)",
        ),
        (
            "[participants.payment.protection]\nretry_backoff_ms = 600\n",
            "participants.payment.protection.retry_backoff_ms (600) must not exceed "
            "participants.payment.timeout_ms (500)",
        ),
        (
            "[participants.payment.protection]\nbreaker_probes = 0\n",
            "participants.payment.protection.breaker_probes: Input should be greater than",
        ),
    ],
)
def test_settings_that_would_make_another_meaningless_are_refused(extra: str, message: str) -> None:
    text = extra + MINIMAL if not extra.startswith("[") else MINIMAL + extra
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_retry_turned_off_may_have_any_backoff() -> None:
    text = MINIMAL + "[participants.payment.protection]\nretry = false\nretry_backoff_ms = 600\n"
    assert Settings.from_toml(text).participants["payment"].protection.retry_backoff_ms == 600


def _defaults(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Every leaf setting's default, by its dotted path; tables of named entries
    (participants, workflows) are left to the caller."""
    found: dict[str, object] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(_defaults(annotation, f"{prefix}{name}."))
        elif (not field.is_required() and get_origin(annotation) is not dict) or name == "keys":
            found[prefix + name] = field.get_default(call_default_factory=True)
    return found


def test_the_example_file_lists_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    expected = {
        **_defaults(Settings),
        **_defaults(ParticipantSettings, "participants.payment."),
    }
    for path, default in expected.items():
        *tables, key = path.split(".")
        where = data
        for table in tables:
            where = where.get(table, {})
        if default is None or default == {}:  # no value to show: a commented example
            assert re.search(rf"^# {re.escape(key)} = ", text, re.M), path
        else:
            assert where.get(key) == default, path


def test_kubernetes_service_links_are_not_settings() -> None:
    """A Service named status-aggregator makes Kubernetes set these in every pod."""
    env = {
        "STATUS_AGGREGATOR_PORT": "tcp://10.0.0.1:8080",
        "STATUS_AGGREGATOR_PORT_8080_TCP": "tcp://10.0.0.1:8080",
        "STATUS_AGGREGATOR_PORT_8080_TCP_ADDR": "10.0.0.1",
        "STATUS_AGGREGATOR_SERVICE_HOST": "10.0.0.1",
        "STATUS_AGGREGATOR_SERVICE_PORT": "8080",
        "STATUS_AGGREGATOR_SERVICE_PORT_HTTP": "8080",
    }
    assert Settings.from_toml(MINIMAL, env=env).gateway.port == 8080


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"STATUS_AGGREGATOR_GATEWAY": '{"portt": 1}'},
            "environment: STATUS_AGGREGATOR_GATEWAY: gateway.portt: Extra inputs",
        ),
        (
            {"STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS": '{"secret-0123456789abcdef": 5}'},
            "environment: STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS: gateway.auth.keys.<key>: ",
        ),
    ],
)
def test_a_table_from_the_environment_is_blamed_on_its_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(MINIMAL, origin="a.toml", env=env)
    assert str(caught.value).startswith(message)
    assert "secret" not in str(caught.value)


def test_a_key_holding_a_newline_is_named_on_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(MINIMAL + '[cache]\n"ttl\\nms" = 5\n')
    assert "\n" not in str(caught.value) and "ttl\\nms" in str(caught.value)
