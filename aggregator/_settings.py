"""Settings: pydantic models, built in code or read from one TOML file."""

from __future__ import annotations

import json
import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS, validation_problems
from contracts._views import PLACEHOLDER

from ._errors import ConfigError
from ._ids import DEFAULT_ID_PATTERN, IdPolicy
from ._rules import (
    BUILTIN_DEFINITIONS,
    DEFAULT_CLOCK_TOLERANCE_MS,
    DEFAULT_WINDOW_MS,
    AnomalyRule,
    ParticipantDef,
    StatusRule,
    WorkflowDefinition,
    when,
)

ENV_PREFIX = "STATUS_AGGREGATOR_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"  # names the file; not a setting
# Kubernetes' service links for a Service named status-aggregator: _SERVICE_HOST,
# _SERVICE_PORT(_<name>), _PORT, _PORT_<port>_<proto>(_ADDR|_PORT|_PROTO).
_SERVICE_LINKS = re.compile(r"SERVICE_(HOST|PORT)(_\w+)?|PORT(_\w+)?")
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")

Millis = Annotated[int, Field(gt=0, le=3_600_000)]
DAY_MS = 86_400_000


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProtectionSettings(_Settings):
    """How a participant is protected from us (and we from it)."""

    max_concurrency: int = Field(32, ge=1, description="Calls in flight at once (bulkhead).")
    rate_limit: int | None = Field(None, ge=1, description="Calls per second; none: unlimited.")
    breaker_threshold: int = Field(5, ge=1, description="Consecutive failures that open it.")
    breaker_reset_ms: Millis = 5_000
    breaker_probes: int = Field(1, ge=1, description="Calls let through when half-open.")
    retry: bool = Field(True, description="Retry once on a connection error or 408, 425, 502, 504.")
    retry_backoff_ms: Millis = 50
    retry_budget_ratio: float = Field(0.2, ge=0, le=1, description="Retries per call, at most.")
    retry_budget_min: int = Field(10, ge=0, description="Retries always allowed in reserve.")


class ParticipantSettings(_Settings):
    url: str = Field(description=f"URL template holding {PLACEHOLDER} once, in the path.")
    timeout_ms: Millis = DEFAULT_TIMEOUT_MS
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1_024, le=64 * 1024 * 1024)
    protection: ProtectionSettings = ProtectionSettings()

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if url.count(PLACEHOLDER) != 1:
            raise ValueError(f"must hold {PLACEHOLDER} exactly once")
        parts = urlsplit(url.replace(PLACEHOLDER, "id"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if PLACEHOLDER not in urlsplit(url).path:
            raise ValueError(f"{PLACEHOLDER} must be in the path")
        return url


SHARED_SCHEMES = ("valkey", "valkeys", "redis", "rediss")


class CacheSettings(_Settings):
    ttl_ms: Millis = Field(2_000, description="How long a part is served from the cache.")
    terminal_ttl_ms: Millis = Field(10_000, description="The same, for a part in a final state.")
    stale_ms: Millis = Field(60_000, description="How long a last good part may stand in.")
    max_entries: int = Field(20_000, ge=1, description="Parts kept per participant.")
    backend: str = Field(
        "memory",
        description='"memory" (each process its own) or "valkey://host:port/db" (also'
        " redis://, rediss://): parts, leases and last good parts shared by every process",
    )
    password: SecretStr | None = Field(
        None, description="The shared store's password: from the environment, never a file."
    )
    prefix: str = Field(
        "status-aggregator", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Keys start with it."
    )
    local_ms: int = Field(
        250, ge=0, le=1_000, description="How long a part read from the shared store is held."
    )
    op_budget_ms: int = Field(
        50, ge=1, le=10_000, description="Time for one operation on the shared store."
    )
    retry_ms: Millis = Field(
        1_000, description="After a failure, how long the shared store is left alone."
    )

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, backend: str) -> str:
        if backend == "memory":
            return backend
        # The value is never repeated in a message: it may hold a credential.
        url = urlsplit(backend)
        if url.scheme not in SHARED_SCHEMES or not url.hostname:
            raise ValueError(
                'neither "memory" nor a URL such as "valkey://127.0.0.1:6379/0"'
                f" ({', '.join(s + '://' for s in SHARED_SCHEMES)})"
            )
        if url.password is not None:
            raise ValueError(
                "holds a password: give it in STATUS_AGGREGATOR_CACHE__PASSWORD instead"
            )
        if url.query or url.fragment:
            raise ValueError(
                "takes no query or fragment: a password goes in"
                " STATUS_AGGREGATOR_CACHE__PASSWORD, other options are settings"
            )
        if not re.fullmatch(r"(/\d{1,5})?/?", url.path):
            raise ValueError("its path is the database number, such as /0")
        try:
            url.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("its port must be a number from 0 to 65535") from None
        return backend

    @model_validator(mode="after")
    def _password_for_a_store(self) -> Self:
        if self.password is not None and not self.shared:
            raise ValueError(
                "password is set, but backend is memory: there is no store to give it to"
            )
        return self

    @property
    def shared(self) -> bool:
        """Whether parts live in a shared store rather than in this process alone."""
        return self.backend != "memory"


class DeclaredParticipant(_Settings):
    states: list[str] = Field(min_length=1)
    terminal: list[str] = []


class DeclaredRule(_Settings):
    status: str = Field(min_length=1)
    when: dict[str, list[str]]


Duration = Annotated[int, Field(gt=0, le=DAY_MS * 30)]


class DeclaredAnomaly(_Settings):
    code: str = Field(min_length=1)
    message: str = Field(min_length=1)
    when: dict[str, list[str]]
    after_ms: Duration | None = Field(
        None, description="Raised only once the condition has held this long."
    )


class AnomalySettings(_Settings):
    """When anomalies are raised, and on what."""

    window_ms: Millis = Field(
        DEFAULT_WINDOW_MS,
        description="Parts an anomaly rests on are fetched within this of each other.",
    )
    clock_tolerance_ms: Millis = Field(
        DEFAULT_CLOCK_TOLERANCE_MS,
        description="How far ahead of ours a participant's clock may run.",
    )
    after_ms: dict[str, Duration] = Field(
        {}, description="Durations of the workflow's duration anomalies, by code."
    )


class DeclaredWorkflow(_Settings):
    """A workflow declared in configuration; its participants use the generic contract."""

    participants: dict[str, DeclaredParticipant] = Field(min_length=1)
    rules: list[DeclaredRule] = Field(min_length=1)
    anomalies: list[DeclaredAnomaly] = []
    fallback: str = "unknown"
    final: list[dict[str, list[str]]] = Field(
        [],
        description="Conditions under which the workflow is over (watchers stop); "
        "none: when every participant is in a terminal state.",
    )

    def build(self, name: str) -> WorkflowDefinition:
        return WorkflowDefinition(
            name=name,
            participants=tuple(
                ParticipantDef(key, tuple(p.states), frozenset(p.terminal))
                for key, p in self.participants.items()
            ),
            rules=tuple(StatusRule(r.status, when(**r.when)) for r in self.rules),
            anomalies=tuple(
                AnomalyRule(a.code, a.message, when(**a.when), a.after_ms) for a in self.anomalies
            ),
            fallback=self.fallback,
            final=tuple(when(**condition) for condition in self.final),
        )


class AuthSettings(_Settings):
    """Who may ask the gateway, and as which tenant. Off by default."""

    enabled: bool = False
    keys: dict[str, str] = Field(
        default_factory=dict,
        description="API key or bearer token -> tenant. Keep them out of the file: "
        'STATUS_AGGREGATOR_GATEWAY__AUTH__KEYS=\'{"<token>": "<tenant>"}\'.',
    )
    tenant_header: str = Field("X-Tenant-ID", description="Sent to participants; set by us.")

    @field_validator("keys")
    @classmethod
    def _check_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for token, tenant in keys.items():
            if not _TOKEN.fullmatch(token):
                raise ValueError("a key must be 16 to 512 characters of A-Z a-z 0-9 . _ ~ + / = -")
            if not _TENANT.fullmatch(tenant):
                raise ValueError(
                    f"tenant {tenant!r} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
                )
        return keys

    @field_validator("tenant_header")
    @classmethod
    def _check_header(cls, name: str) -> str:
        if not _HEADER.fullmatch(name):
            raise ValueError("must be a header name of letters, digits and dashes")
        return name

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> Self:
        if self.enabled and not self.keys:
            raise ValueError("auth is enabled but no keys are configured")
        return self


class WatchSettings(_Settings):
    """Watching workflows (``StatusAggregator.watch``, the gateway's event streams)."""

    max_watchers: int = Field(20_000, ge=1, description="Watchers at once, all workflows.")
    max_watchers_per_workflow: int = Field(
        1_000, ge=1, description="Watchers of one workflow (per tenant) at once."
    )
    heartbeat_ms: Millis = Field(
        15_000, description="A comment on an idle event stream, for proxies that close them."
    )
    retry_ms: Millis = Field(2_000, description="An event stream's advice on reconnecting.")


class GatewaySettings(_Settings):
    """The HTTP gateway's own settings; the embedded library ignores them."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65_535)
    max_concurrent_requests: int = Field(512, ge=1, description="Beyond it: a fast 503.")
    max_batch: int = Field(100, ge=1, le=1_000, description="Ids in one batch request.")
    retry_after_s: int = Field(1, ge=1, description="Retry-After on a 503.")
    shutdown_timeout_ms: Millis = Field(10_000, description="Grace for in-flight requests.")
    log_format: Literal["text", "json"] = "text"
    access_log: bool = Field(True, description="One log line per request.")
    gc_young_threshold: int = Field(
        50_000,
        ge=0,
        description="Allocations between young garbage collections in the gateway's "
        "processes (Python's default is 700); 0 leaves the collector alone.",
    )
    ui: bool = Field(False, description="Serve the operator page at /ui.")
    auth: AuthSettings = AuthSettings()


class Settings(_Settings):
    """Everything the aggregator needs; the defaults are the documented ones.

    >>> settings = Settings(participants={
    ...     "payment": {"url": "http://127.0.0.1:8101/payments/{workflow_id}"},
    ...     "inventory": {"url": "http://127.0.0.1:8102/reservations/{workflow_id}"},
    ...     "shipping": {"url": "http://127.0.0.1:8103/shipments/{workflow_id}"},
    ... })
    >>> settings.participants["payment"].timeout_ms
    500
    """

    workflow: str = Field("order_fulfilment", description="The definition to derive status with.")
    workflows: dict[str, DeclaredWorkflow] = {}
    participants: dict[str, ParticipantSettings]
    deadline_ms: Millis = Field(1_000, description="Overall time for one status.")
    id_pattern: str = DEFAULT_ID_PATTERN
    max_concurrent_statuses: int = Field(16, ge=1, description="status_many's concurrency.")
    cache: CacheSettings = CacheSettings()
    anomalies: AnomalySettings = AnomalySettings()
    watch: WatchSettings = WatchSettings()
    gateway: GatewaySettings = GatewaySettings()

    @field_validator("id_pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        try:
            IdPolicy(pattern)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("id_pattern: ")) from None
        return pattern

    @model_validator(mode="after")
    def _check_participants(self) -> Self:
        try:
            definition = self.definition()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        missing = [name for name in definition.by_name if name not in self.participants]
        extra = [name for name in self.participants if name not in definition.by_name]
        if missing:
            raise ValueError(
                f"workflow {definition.name!r} needs participants {missing} configured"
            )
        if extra:
            raise ValueError(f"participants {extra} are not in workflow {definition.name!r}")
        return self

    @model_validator(mode="after")
    def _check_invariants(self) -> Self:
        """Pairs of settings whose violation would make one of them meaningless."""
        cache = self.cache
        pairs = [
            ("cache.ttl_ms", cache.ttl_ms, "cache.terminal_ttl_ms", cache.terminal_ttl_ms),
            ("cache.ttl_ms", cache.ttl_ms, "cache.stale_ms", cache.stale_ms),
        ]
        for name, participant in self.participants.items():
            where = f"participants.{name}"
            pairs.append(
                (f"{where}.timeout_ms", participant.timeout_ms, "deadline_ms", self.deadline_ms)
            )
            protection = participant.protection
            if protection.retry:
                pairs.append(
                    (
                        f"{where}.protection.retry_backoff_ms",
                        protection.retry_backoff_ms,
                        f"{where}.timeout_ms",
                        participant.timeout_ms,
                    )
                )
        for small, small_value, large, large_value in pairs:
            if small_value > large_value:
                raise ValueError(f"{small} ({small_value}) must not exceed {large} ({large_value})")
        return self

    @property
    def outbound_connections(self) -> int:
        """The outbound connection pool's size: room for every participant's
        ``max_concurrency`` calls at once, so the bulkheads, not the pool, bound them."""
        return sum(p.protection.max_concurrency for p in self.participants.values())

    def definition(self) -> WorkflowDefinition:
        """The workflow definition these settings choose."""
        declared = self.workflows.get(self.workflow)
        if declared is not None:
            definition = declared.build(self.workflow)
        else:
            builtin = BUILTIN_DEFINITIONS.get(self.workflow)
            if builtin is None:
                known = sorted({*BUILTIN_DEFINITIONS, *self.workflows})
                raise ConfigError(f"workflow: {self.workflow!r} is not defined; known: {known}")
            definition = builtin
        anomalies = self.anomalies
        return definition.with_anomaly_settings(
            window=anomalies.window_ms / 1000,
            clock_tolerance=anomalies.clock_tolerance_ms / 1000,
            after_ms=anomalies.after_ms,
        )

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, origin: str = "settings") -> Settings:
        """Validate plain data strictly (``true`` is not a number, ``"800"`` is not
        one either); any problem becomes one ConfigError naming the field."""
        try:
            return cls.model_validate(data, strict=True)
        except ValidationError as exc:
            raise ConfigError(f"{origin}: {_first_problem(exc)}") from None

    @classmethod
    def from_toml(
        cls, text: str, *, origin: str = "settings", env: Mapping[str, str] | None = None
    ) -> Settings:
        """Parse TOML text; with ``env``, its STATUS_AGGREGATOR_* variables override values."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
        cache = data.get("cache")
        if isinstance(cache, dict) and "password" in cache:  # a file is read by many
            raise ConfigError(
                f"{origin}: cache.password: give it in the environment,"
                " STATUS_AGGREGATOR_CACHE__PASSWORD, not in a file"
            )
        if env is None:
            return cls.from_mapping(data, origin=origin)
        overrides, variables = _env_overrides(env)
        try:
            return cls.from_mapping(_deep_merge(data, overrides), origin=origin)
        except ConfigError as exc:
            # A value the environment gave is blamed on its variable, not on the file.
            problem = str(exc).removeprefix(f"{origin}: ")
            for path, variable in variables.items():
                dotted = ".".join(path)
                if problem.startswith((f"{dotted}:", f"{dotted}.")) or f"{dotted} (" in problem:
                    raise ConfigError(f"environment: {variable}: {problem}") from None
            raise

    @classmethod
    def from_file(cls, path: str | Path, *, env: Mapping[str, str] | None = None) -> Settings:
        """Read a TOML file; a missing or invalid file raises ConfigError.

        Pass ``env=os.environ`` to let environment variables override single values:
        ``STATUS_AGGREGATOR_DEADLINE_MS=800``, nested keys joined by ``__``, as in
        ``STATUS_AGGREGATOR_PARTICIPANTS__PAYMENT__URL``.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        return cls.from_toml(text, origin=str(path), env=env)


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """``STATUS_AGGREGATOR_*`` variables as nested values, each converted as its
    setting's type needs: strings as they are, anything else as JSON, and which
    variable set each path. A variable that names no setting, or a value that is
    not JSON, is refused by name."""
    overrides: dict[str, Any] = {}
    variables: dict[tuple[str, ...], str] = {}
    for variable, raw in env.items():
        if not variable.upper().startswith(ENV_PREFIX) or variable.upper() == CONFIG_ENV:
            continue
        if _SERVICE_LINKS.fullmatch(variable[len(ENV_PREFIX) :].upper()):
            continue  # what Kubernetes sets for a Service named status-aggregator
        path = variable[len(ENV_PREFIX) :].lower().split("__")
        textual = _textual(Settings, path)
        if textual is None:
            raise ConfigError(f"environment: {variable}: no such setting")
        if textual:
            value: Any = raw
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise ConfigError(
                    f"environment: {variable}: {raw[:40]!r} is not a JSON value"
                ) from None
        target = overrides
        for step in path[:-1]:
            target = target.setdefault(step, {})
        target[path[-1]] = value
        variables[tuple(path)] = variable
    return overrides, variables


def _textual(model: type[BaseModel], path: list[str]) -> bool | None:
    """Whether the setting at ``path`` takes a string as it is (True) or a JSON value
    (False); None when no setting has that path."""
    field = model.model_fields.get(path[0]) if path[0] else None
    if field is None:
        return None
    annotation, rest = field.annotation, path[1:]
    if get_origin(annotation) is dict and rest:  # a table of named entries
        annotation, rest = get_args(annotation)[1], rest[1:]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _textual(annotation, rest) if rest else False
    if rest:
        return None
    if get_origin(annotation) in (Union, types.UnionType):  # an optional setting
        choices = [choice for choice in get_args(annotation) if choice is not type(None)]
        annotation = choices[0] if len(choices) == 1 else annotation
    if annotation in (str, SecretStr):
        return True
    return get_origin(annotation) is Literal and all(
        isinstance(choice, str) for choice in get_args(annotation)
    )


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_problem(exc: ValidationError) -> str:
    # A credential (a key of gateway.auth.keys) is never printed.
    secrets = [("gateway", "auth", "keys"), ("cache", "backend"), ("cache", "password")]
    first, *rest = validation_problems(exc, secret_under=secrets, whole="")
    more = len(rest)
    return first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
